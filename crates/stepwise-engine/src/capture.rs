//! Bounded capture of a child's output while it streams, so a step that writes a
//! gigabyte never grows the worker.

use std::collections::VecDeque;

/// Keeps the first `head` bytes and the last `tail` bytes of a stream, and counts
/// what fell in between.
#[derive(Debug)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_limit: usize,
    tail_limit: usize,
    dropped: u64,
}

impl Capture {
    /// A capture of at most `limit` bytes: half from the start, half from the end.
    pub fn new(limit: usize) -> Self {
        let head_limit = limit / 2;
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_limit,
            tail_limit: limit - head_limit,
            dropped: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < self.head_limit {
            let n = bytes.len().min(self.head_limit - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if bytes.len() >= self.tail_limit {
            self.dropped += (self.tail.len() + bytes.len() - self.tail_limit) as u64;
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_limit..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_limit);
        self.dropped += overflow as u64;
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.dropped > 0
    }

    /// The captured text, with a line saying how much was cut when something was.
    pub fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            out.push_str(&format!("\n[… {} bytes truncated …]\n", self.dropped));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }

    /// The last `n` characters of the captured text, for error messages.
    pub fn tail_text(&self, n: usize) -> String {
        let text = self.text();
        let start = text
            .char_indices()
            .rev()
            .nth(n.saturating_sub(1))
            .map_or(0, |(i, _)| i);
        text[start..].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut c = Capture::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.text(), "hello world");
        assert!(!c.truncated());
    }

    #[test]
    fn long_output_keeps_head_and_tail_and_says_so() {
        let mut c = Capture::new(10);
        for _ in 0..1000 {
            c.push(b"0123456789");
        }
        c.push(b"END");
        assert!(c.truncated());
        let text = c.text();
        assert!(text.starts_with("01234"), "{text}");
        assert!(text.ends_with("89END"), "{text}");
        assert!(text.contains("[… 9993 bytes truncated …]"), "{text}");
    }

    #[test]
    fn tail_text_takes_the_end() {
        let mut c = Capture::new(100);
        c.push("line one\nline two\nfinal error".as_bytes());
        assert_eq!(c.tail_text(11), "final error");
    }
}
