//! The text encoding of a CSV file: UTF-8 (with or without a byte-order
//! mark), UTF-16 LE/BE (with a byte-order mark) or Windows-1252 (what Excel
//! writes as "CSV" in Western Europe; a superset of Latin-1's printable
//! characters). Decoding uses `encoding_rs`, the decoder of Firefox.
//!
//! Detection: a byte-order mark decides; otherwise a file that is valid UTF-8
//! from end to end is UTF-8, and any other file is Windows-1252. `--encoding`
//! forces one. A cell that does not decode in the chosen encoding is an error
//! naming its row: text is never stored garbled.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use encoding_rs::{Decoder, Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

use crate::error::{Error, Result};
use crate::t;

/// The encodings `--encoding` accepts, for help and errors.
pub const NAMES: &str = "utf-8, utf-16le, utf-16be, windows-1252 (or latin-1)";

/// Parses an `--encoding` value (any WHATWG label, e.g. `latin1`, `cp1252`).
pub fn parse(label: &str) -> Result<&'static Encoding> {
    let label = label.trim();
    let lower = label.to_ascii_lowercase();
    let found = match lower.as_str() {
        "latin-1" | "latin1" | "iso-8859-1" => Some(WINDOWS_1252),
        "utf-16" => Some(UTF_16LE),
        _ => Encoding::for_label(lower.as_bytes()),
    };
    found
        .filter(|e| [UTF_8, UTF_16LE, UTF_16BE, WINDOWS_1252].contains(e))
        .ok_or_else(|| {
            Error::usage(t!("import-error-encoding", label = format!("{label:?}")))
                .with_hint(t!("import-hint-encodings", names = NAMES))
        })
}

/// The encoding a file is in (see the module's rules) and the length of its
/// byte-order mark.
pub fn detect(
    path: &Path,
    forced: Option<&'static Encoding>,
) -> Result<(&'static Encoding, usize)> {
    let mut file = BufReader::with_capacity(1 << 16, open(path)?);
    let mut head = [0u8; 3];
    let n = read_full(&mut file, &mut head, path)?;
    if let Some((bom_encoding, bom_len)) = Encoding::for_bom(&head[..n]) {
        return Ok(match forced {
            Some(f) if f != bom_encoding => (f, 0),
            _ => (bom_encoding, bom_len),
        });
    }
    if let Some(f) = forced {
        return Ok((f, 0));
    }
    // Valid UTF-8 from end to end, or Windows-1252.
    let mut file = BufReader::with_capacity(1 << 16, open(path)?);
    let mut buf = vec![0u8; 1 << 16];
    let mut carry = 0usize;
    loop {
        let n = file
            .read(&mut buf[carry..])
            .map_err(|e| read_error(path, &e))?;
        let filled = carry + n;
        if n == 0 {
            return Ok((if carry == 0 { UTF_8 } else { WINDOWS_1252 }, 0));
        }
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carry = 0,
            // An incomplete character at the end of the chunk: keep it.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carry = filled - valid;
            }
            Err(_) => return Ok((WINDOWS_1252, 0)),
        }
    }
}

/// The file's bytes as UTF-8, past the byte-order mark: the file itself when
/// it is UTF-8, otherwise decoded as it is read.
pub fn utf8_reader(
    path: &Path,
    encoding: &'static Encoding,
    bom_len: usize,
) -> Result<Box<dyn Read + Send>> {
    let mut file = BufReader::with_capacity(1 << 16, open(path)?);
    let mut skip = vec![0u8; bom_len];
    read_full(&mut file, &mut skip, path)?;
    if encoding == UTF_8 {
        return Ok(Box::new(file));
    }
    Ok(Box::new(Transcoder {
        inner: file,
        decoder: encoding.new_decoder_without_bom_handling(),
        input: vec![0u8; 1 << 16],
        start: 0,
        end: 0,
        output: Vec::new(),
        out_pos: 0,
        done: false,
        line: 1,
        encoding,
    }))
}

/// A cell's text. Bytes that are not UTF-8 (after decoding), and the C1
/// control characters Windows-1252 leaves undefined, are an error naming the
/// row: the file is not in the encoding it was read as.
pub fn cell_text(
    bytes: &[u8],
    row: u32,
    encoding: &'static Encoding,
    path: &Path,
) -> Result<String> {
    let text = std::str::from_utf8(bytes).map_err(|_| undecodable(path, row, encoding))?;
    if encoding == WINDOWS_1252 && text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        return Err(undecodable(path, row, encoding));
    }
    Ok(text.to_string())
}

fn undecodable(path: &Path, row: u32, encoding: &'static Encoding) -> Error {
    let other = if encoding == UTF_8 {
        "windows-1252"
    } else {
        "utf-8"
    };
    Error::data(t!(
        "import-error-undecodable",
        file = path.display().to_string(),
        row = row.to_string(),
        encoding = encoding.name()
    ))
    .with_hint(t!("import-hint-encoding", other = other))
}

/// Decodes a stream into UTF-8 as it is read. Malformed input (an odd byte
/// or a lone surrogate in UTF-16) is an error naming the line.
struct Transcoder<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    start: usize,
    end: usize,
    output: Vec<u8>,
    out_pos: usize,
    done: bool,
    line: u32,
    encoding: &'static Encoding,
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.out_pos == self.output.len() {
            if self.done {
                return Ok(0);
            }
            if self.start == self.end {
                self.start = 0;
                self.end = self.inner.read(&mut self.input)?;
            }
            let last = self.end == 0;
            let max = self
                .decoder
                .max_utf8_buffer_length_without_replacement(self.end - self.start)
                .unwrap_or(1 << 18)
                .max(16);
            self.output.clear();
            self.output.resize(max, 0);
            self.out_pos = 0;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.start..self.end],
                &mut self.output,
                last,
            );
            self.start += read;
            self.output.truncate(written);
            self.line += self.output.iter().filter(|b| **b == b'\n').count() as u32;
            match result {
                encoding_rs::DecoderResult::Malformed(_, _) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        t!(
                            "import-line-undecodable",
                            line = self.line.to_string(),
                            encoding = self.encoding.name()
                        ),
                    ));
                }
                encoding_rs::DecoderResult::InputEmpty if last => self.done = true,
                _ => {}
            }
        }
        let n = buf.len().min(self.output.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| read_error(path, &e))
}

fn read_error(path: &Path, e: &std::io::Error) -> Error {
    Error::data(t!(
        "file-error-read-file",
        file = path.display().to_string(),
        reason = e.to_string()
    ))
}

fn read_full(r: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(read_error(path, &e)),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], forced: Option<&'static Encoding>) -> Result<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, bytes).unwrap();
        let (enc, bom) = detect(&path, forced)?;
        let mut text = String::new();
        utf8_reader(&path, enc, bom)?
            .read_to_string(&mut text)
            .map_err(|e| Error::data(e.to_string()))?;
        Ok(text)
    }

    #[test]
    fn detects_each_encoding() {
        let text = "org,email\nSociété Générale,zoë@example.test\n";
        assert_eq!(decode_all(text.as_bytes(), None).unwrap(), text);
        let bom = [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat();
        assert_eq!(decode_all(&bom, None).unwrap(), text);
        let (cp, _, _) = WINDOWS_1252.encode(text);
        assert_eq!(decode_all(&cp, None).unwrap(), text);
        let mut le = vec![0xff, 0xfe];
        let mut be = vec![0xfe, 0xff];
        for u in text.encode_utf16() {
            le.extend(u.to_le_bytes());
            be.extend(u.to_be_bytes());
        }
        assert_eq!(decode_all(&le, None).unwrap(), text);
        assert_eq!(decode_all(&be, None).unwrap(), text);
    }

    #[test]
    fn forced_utf16_with_a_lone_surrogate_is_an_error_naming_the_line() {
        let mut le = vec![0xff, 0xfe];
        for u in "a\nb\n".encode_utf16() {
            le.extend(u.to_le_bytes());
        }
        le.extend([0x00, 0xd8, b'x', 0]);
        let err = decode_all(&le, None).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn labels() {
        assert_eq!(parse("latin-1").unwrap(), WINDOWS_1252);
        assert_eq!(parse("UTF-8").unwrap(), UTF_8);
        assert!(parse("klingon").is_err());
    }

    #[test]
    fn undefined_windows_1252_bytes_are_refused_with_the_row() {
        let p = Path::new("x.csv");
        let err = cell_text("a\u{81}b".as_bytes(), 7, WINDOWS_1252, p).unwrap_err();
        assert!(err.to_string().contains("row 7"), "{err}");
        assert!(cell_text(b"\xe9", 2, UTF_8, p).is_err());
    }
}
