//! Payload texts (serde_json's output: UTF-8 without a check), kept back to back in large chunks: one allocation per megabyte of payloads
//! instead of one per event. A chunk never grows past its first capacity, so a text stays where
//! it was written.

/// Bytes per chunk (a longer text gets a chunk of its own size).
const CHUNK: usize = 1 << 20;

/// Where one text lies.
#[derive(Clone, Copy)]
pub(super) struct TextRef {
    chunk: u32,
    start: u32,
    len: u32,
}

/// The texts of every stored event.
#[derive(Default)]
pub(super) struct Texts {
    chunks: Vec<Vec<u8>>,
}

impl Texts {
    /// Keeps a copy of `text`; `None` only for a text or a store beyond 4 GiB of texts per
    /// chunk or 4 billion chunks (nothing is kept then).
    pub(super) fn push(&mut self, text: &[u8]) -> Option<TextRef> {
        let len = u32::try_from(text.len()).ok()?;
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= text.len());
        if !fits {
            u32::try_from(self.chunks.len()).ok()?;
            self.chunks.push(Vec::with_capacity(CHUNK.max(text.len())));
        }
        let chunk = u32::try_from(self.chunks.len().checked_sub(1)?).ok()?;
        let last = self.chunks.last_mut()?;
        let start = u32::try_from(last.len()).ok()?;
        last.extend_from_slice(text);
        Some(TextRef { chunk, start, len })
    }

    /// The text at `at`.
    pub(super) fn get(&self, at: TextRef) -> Option<&[u8]> {
        let start = at.start as usize;
        self.chunks
            .get(at.chunk as usize)?
            .get(start..start.checked_add(at.len as usize)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_read_back_as_written_across_chunks() {
        let mut texts = Texts::default();
        let long = "x".repeat(CHUNK + 1);
        let written: Vec<(String, TextRef)> = ["{\"a\":1}", long.as_str(), "{}", "\"é\""]
            .iter()
            .cycle()
            .take(12)
            .map(|text| (text.to_string(), texts.push(text.as_bytes()).unwrap()))
            .collect();
        for (text, at) in &written {
            assert_eq!(texts.get(*at), Some(text.as_bytes()));
        }
        // The long texts each needed a chunk of their own, and the short ones shared.
        assert!(texts.chunks.len() >= 3 && texts.chunks.len() < written.len());
    }
}
