//! Token-based chunking: a document is cut into chunks of at most `max_tokens`
//! tokens (tiktoken), consecutive chunks sharing up to `overlap_tokens` tokens.
//! Cuts fall at paragraph boundaries when a chunk is at least half full, else at
//! sentence boundaries, else between words; each chunk is an exact slice of the
//! document, so its text can be quoted as is.

use std::ops::Range;

use crate::tokenizer::Encoding;

/// One chunk of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub index: usize,
    /// The text, an exact slice of the document.
    pub text: String,
    /// Its tokens.
    pub tokens: usize,
}

/// How documents are cut.
#[derive(Clone, Copy, Debug)]
pub struct Chunker {
    /// Token counting.
    pub encoding: Encoding,
    /// Most tokens per chunk.
    pub max_tokens: usize,
    /// Tokens repeated from the end of one chunk at the start of the next.
    pub overlap_tokens: usize,
}

/// A run of text that is kept whole when it fits: a sentence, or a piece of an
/// overlong one. `paragraph_end` marks the last unit of a paragraph.
#[derive(Clone, Debug)]
struct Unit {
    range: Range<usize>,
    tokens: usize,
    paragraph_end: bool,
}

impl Chunker {
    /// Cuts `text` into chunks; an empty or blank text has none.
    pub fn chunk(&self, text: &str) -> Vec<Chunk> {
        let max = self.max_tokens.max(1);
        let units = self.units(text, max);
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < units.len() {
            // Grow the chunk unit by unit.
            let mut end = start;
            let mut tokens = 0;
            while end < units.len() && (end == start || tokens + units[end].tokens <= max) {
                tokens += units[end].tokens;
                end += 1;
                // At a paragraph end with the chunk half full, stop here rather
                // than cut the next paragraph, unless it fits whole.
                if end < units.len() && units[end - 1].paragraph_end && tokens * 2 >= max {
                    let next_paragraph: usize = units[end..]
                        .iter()
                        .scan(false, |done, unit| {
                            (!*done).then(|| {
                                *done = unit.paragraph_end;
                                unit.tokens
                            })
                        })
                        .sum();
                    if tokens + next_paragraph > max {
                        break;
                    }
                }
            }
            let range = units[start].range.start..units[end - 1].range.end;
            chunks.push(Chunk {
                index: chunks.len(),
                text: text[range].trim().to_owned(),
                tokens,
            });
            if end == units.len() {
                break;
            }
            // The next chunk repeats the last units of this one, up to the overlap,
            // but always moves forward.
            let mut next = end;
            let mut overlap = 0;
            while next > start + 1 && overlap + units[next - 1].tokens <= self.overlap_tokens {
                overlap += units[next - 1].tokens;
                next -= 1;
            }
            start = next;
        }
        chunks.retain(|chunk| !chunk.text.is_empty());
        for (i, chunk) in chunks.iter_mut().enumerate() {
            chunk.index = i;
        }
        chunks
    }

    /// Sentences (split further when longer than `max`), covering `text`.
    fn units(&self, text: &str, max: usize) -> Vec<Unit> {
        let mut units = Vec::new();
        for paragraph in split_keeping(text, paragraph_breaks(text)) {
            let sentences = split_keeping(
                &text[paragraph.clone()],
                sentence_breaks(&text[paragraph.clone()]),
            );
            let count = sentences.len();
            for (i, sentence) in sentences.into_iter().enumerate() {
                let range = paragraph.start + sentence.start..paragraph.start + sentence.end;
                let tokens = self.encoding.count(&text[range.clone()]);
                let paragraph_end = i + 1 == count;
                if tokens <= max {
                    units.push(Unit {
                        range,
                        tokens,
                        paragraph_end,
                    });
                    continue;
                }
                let pieces = self.split_words(text, range, max);
                let last = pieces.len().saturating_sub(1);
                for (j, (range, tokens)) in pieces.into_iter().enumerate() {
                    units.push(Unit {
                        range,
                        tokens,
                        paragraph_end: paragraph_end && j == last,
                    });
                }
            }
        }
        units.retain(|unit| !text[unit.range.clone()].trim().is_empty());
        units
    }

    /// An overlong sentence cut between words into pieces of at most `max`
    /// tokens (a single word longer than that is a piece of its own).
    fn split_words(
        &self,
        text: &str,
        range: Range<usize>,
        max: usize,
    ) -> Vec<(Range<usize>, usize)> {
        let mut pieces = Vec::new();
        let mut start = range.start;
        let mut tokens = 0;
        let mut cursor = range.start;
        for word in text[range.clone()].split_inclusive(char::is_whitespace) {
            let word_tokens = self.encoding.count(word);
            if tokens > 0 && tokens + word_tokens > max {
                pieces.push((start..cursor, tokens));
                start = cursor;
                tokens = 0;
            }
            tokens += word_tokens;
            cursor += word.len();
        }
        if cursor > start {
            pieces.push((start..cursor, tokens));
        }
        pieces
    }
}

/// Byte offsets where a new paragraph starts (after a blank line).
fn paragraph_breaks(text: &str) -> Vec<usize> {
    let mut breaks = Vec::new();
    let mut offset = 0;
    let mut blank_seen = false;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            blank_seen = true;
        } else if blank_seen {
            breaks.push(offset);
            blank_seen = false;
        }
        offset += line.len();
    }
    breaks
}

/// Byte offsets where a new sentence starts: after `.`, `!`, `?` (and closing
/// quotes or brackets) followed by whitespace, and after line breaks that start a
/// list item or heading.
fn sentence_breaks(text: &str) -> Vec<usize> {
    let mut breaks = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut after_terminal = false;
    while let Some((i, c)) = chars.next() {
        if after_terminal && c.is_whitespace() {
            let next = chars.peek().map(|&(j, _)| j).unwrap_or(text.len());
            breaks.push(next);
            after_terminal = false;
            continue;
        }
        if c == '\n' {
            let rest = text[i + 1..].trim_start_matches([' ', '\t']);
            if rest.starts_with(['-', '*', '#', '|'])
                || rest.starts_with(|d: char| d.is_ascii_digit())
            {
                breaks.push(i + 1);
            }
        }
        after_terminal = matches!(c, '.' | '!' | '?')
            || (after_terminal && matches!(c, '"' | '\'' | ')' | ']' | '”' | '’'));
    }
    breaks.dedup();
    breaks.retain(|&b| b > 0 && b < text.len());
    breaks
}

/// `text`'s byte range cut at `breaks` (sorted), as consecutive ranges.
fn split_keeping(text: &str, breaks: Vec<usize>) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for b in breaks {
        if b > start {
            ranges.push(start..b);
            start = b;
        }
    }
    if start < text.len() {
        ranges.push(start..text.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunker(max_tokens: usize, overlap_tokens: usize) -> Chunker {
        Chunker {
            encoding: Encoding::O200k,
            max_tokens,
            overlap_tokens,
        }
    }

    #[test]
    fn a_short_text_is_one_chunk_and_blank_text_none() {
        let chunks = chunker(100, 10).chunk("Hello world. This is short.");
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "Hello world. This is short.");
        assert!(chunker(100, 10).chunk("  \n\n ").is_empty());
    }

    #[test]
    fn chunks_respect_the_limit_and_overlap() {
        let text = (0..60)
            .map(|i| format!("Sentence number {i} talks about topic {i}."))
            .collect::<Vec<_>>()
            .join(" ");
        let chunker = chunker(50, 12);
        let chunks = chunker.chunk(&text);
        assert!(chunks.len() > 3);
        for chunk in &chunks {
            assert!(chunk.tokens <= 50, "{chunk:?}");
            assert!(text.contains(&chunk.text));
            // Cuts fall at sentence ends.
            assert!(chunk.text.ends_with('.'), "{chunk:?}");
        }
        // Consecutive chunks share their boundary sentence.
        for pair in chunks.windows(2) {
            let last_sentence = pair[0].text.rsplit(". ").next().unwrap();
            assert!(pair[1].text.starts_with(last_sentence), "{pair:?}");
        }
        // Every sentence is in some chunk.
        for i in 0..60 {
            let needle = format!("Sentence number {i} ");
            assert!(chunks.iter().any(|c| c.text.contains(&needle)), "{i}");
        }
    }

    #[test]
    fn paragraph_boundaries_are_preferred() {
        let paragraph = |word: &str| {
            (0..6)
                .map(|i| format!("{word} line {i} is here."))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let text = format!(
            "{}\n\n{}\n\n{}",
            paragraph("alpha"),
            paragraph("beta"),
            paragraph("gamma")
        );
        let per_paragraph = Encoding::O200k.count(&paragraph("alpha"));
        let chunks = chunker(per_paragraph + per_paragraph / 2, 0).chunk(&text);
        assert_eq!(chunks.len(), 3, "{chunks:#?}");
        assert!(chunks[0].text.starts_with("alpha") && chunks[0].text.ends_with("here."));
        assert!(chunks[1].text.starts_with("beta"));
    }

    #[test]
    fn an_overlong_sentence_is_cut_between_words() {
        let text = "word ".repeat(500);
        let chunks = chunker(40, 0).chunk(&text);
        assert!(chunks.len() >= 12, "{}", chunks.len());
        assert!(chunks.iter().all(|c| c.tokens <= 40));
        let words: usize = chunks
            .iter()
            .map(|c| c.text.split_whitespace().count())
            .sum();
        assert_eq!(words, 500);
    }

    #[test]
    fn multibyte_text_is_cut_at_character_boundaries() {
        let text = "Grüße aus Köln! Ça va très bien. 日本語のテキストです。 ".repeat(40);
        let chunks = chunker(30, 5).chunk(&text);
        assert!(chunks.len() > 2);
        assert!(chunks.iter().all(|c| text.contains(&c.text)));
    }
}
