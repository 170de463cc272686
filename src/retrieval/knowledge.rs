//! What the `search_knowledge` tool returns to the model: the passages a
//! knowledge search found, best first, as JSON. Retrieval owns the format; the
//! tool writes it and the extractive answerer reads it.

use serde::{Deserialize, Serialize};

/// The name of the knowledge-search tool.
pub const SEARCH_TOOL: &str = "search_knowledge";

/// One passage found by a knowledge search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// The collection it was found in.
    #[serde(default)]
    pub collection: String,
    /// The document it comes from.
    pub doc_id: String,
    /// The chunk's position in the document.
    pub chunk_index: u32,
    /// Where the document lives, if known.
    #[serde(default)]
    pub source_uri: String,
    /// The chunk's text.
    pub text: String,
    /// The search score.
    pub score: f32,
}

/// What the `search_knowledge` tool returns (as JSON), best passage first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeResults {
    /// The passages.
    pub passages: Vec<Passage>,
}
