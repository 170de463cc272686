//! `agentd ingest`: sends `.md` and `.txt` files to a running server's
//! `RetrievalService.IngestDocuments`, in batches, with a progress bar on a
//! terminal. A file's doc_id is its path relative to the directory given (or its
//! file name, for a file given directly), with `/` separators. Files that are not
//! valid UTF-8 are skipped, with a warning, and listed at the end.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::pb::retrieval_service_client::RetrievalServiceClient;
use crate::pb::{Document, IngestDocumentsRequest};

/// Documents per request.
const BATCH_DOCUMENTS: usize = 32;
/// Text bytes per request, at most (one larger document still goes alone).
const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// What to ingest, and where.
#[derive(Clone, Debug)]
pub struct IngestArgs {
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// The collection.
    pub collection: String,
    /// The server's URL.
    pub server: String,
    /// The API key, if auth is on.
    pub api_key: Option<String>,
}

/// What an ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Documents stored.
    pub documents: usize,
    /// Their chunks.
    pub chunks: u64,
    /// Files skipped because they are not UTF-8.
    pub skipped: Vec<PathBuf>,
}

/// The documents under `paths`: (doc_id, path), sorted, `.md` and `.txt` only.
pub fn find_files(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for path in paths {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if metadata.is_dir() {
            walk(path, path, &mut found)?;
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            found.push((name, path.clone()));
        }
    }
    found.sort();
    Ok(found)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, found)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("md" | "txt")
        ) {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let doc_id = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            found.push((doc_id, path));
        }
    }
    Ok(())
}

/// Sends every file; returns what was stored and skipped.
pub async fn run(args: IngestArgs) -> anyhow::Result<IngestSummary> {
    let files = find_files(&args.paths)?;
    let channel = tonic::transport::Channel::from_shared(args.server.clone())
        .with_context(|| format!("--server {:?} is not a URL", args.server))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", args.server))?;
    let mut client = RetrievalServiceClient::new(channel);
    let progress = ProgressBar::new(files.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = IngestSummary::default();
    let mut batch: Vec<Document> = Vec::new();
    let mut batch_bytes = 0;
    for (doc_id, path) in files {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        progress.inc(1);
        let Ok(text) = String::from_utf8(bytes) else {
            progress.suspend(|| tracing::warn!(path = %path.display(), "skipped: not valid UTF-8"));
            summary.skipped.push(path);
            continue;
        };
        if !batch.is_empty()
            && (batch.len() >= BATCH_DOCUMENTS || batch_bytes + text.len() > BATCH_BYTES)
        {
            send(&mut client, &args, std::mem::take(&mut batch), &mut summary).await?;
            batch_bytes = 0;
        }
        batch_bytes += text.len();
        batch.push(Document {
            doc_id,
            text,
            metadata: Default::default(),
            source_uri: path.display().to_string(),
        });
    }
    if !batch.is_empty() {
        send(&mut client, &args, batch, &mut summary).await?;
    }
    progress.finish_and_clear();
    Ok(summary)
}

async fn send(
    client: &mut RetrievalServiceClient<tonic::transport::Channel>,
    args: &IngestArgs,
    documents: Vec<Document>,
    summary: &mut IngestSummary,
) -> anyhow::Result<()> {
    let mut request = tonic::Request::new(IngestDocumentsRequest {
        collection: args.collection.clone(),
        documents,
    });
    if let Some(key) = &args.api_key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
    }
    let reply = client
        .ingest_documents(request)
        .await
        .map_err(|status| anyhow::anyhow!("{:?}: {}", status.code(), status.message()))?
        .into_inner();
    summary.documents += reply.documents.len();
    summary.chunks += reply
        .documents
        .iter()
        .map(|d| u64::from(d.chunks))
        .sum::<u64>();
    Ok(())
}
