//! Small encoders the messages need: base64 (RFC 4648, for DKIM keys) and RFC 2047 encoded-words
//! for a Subject that a mail reader must show exactly as written.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// UTF-8 bytes per encoded-word: 42 bytes are 56 base64 characters, so a word
/// (`=?utf-8?b?` + 56 + `?=`) is 68 characters and a folded line (a space and a word) 69, under
/// both RFC 2047's 75 per word and RFC 5322's 78 per line.
const WORD_BYTES: usize = 42;

/// `bytes` in standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (whitespace ignored, padding optional) as bytes; `None` on any other character.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            break;
        }
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Whether a Subject must be encoded by us: non-ASCII text, or ASCII holding `=?` that a mail
/// reader would take for an encoded-word and decode into something else.
pub(crate) fn subject_needs_encoding(subject: &str) -> bool {
    !subject.is_ascii() || subject.contains("=?")
}

/// `text` as UTF-8 base64 encoded-words, folded one word per line (`\r\n ` between them). The
/// whitespace between adjacent encoded-words is dropped when decoding, so a reader shows exactly
/// `text`. A word never splits a character.
pub(crate) fn encoded_words(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if i - start + c.len_utf8() > WORD_BYTES {
            words.push(encoded_word(&text[start..i]));
            start = i;
        }
    }
    if start < text.len() || words.is_empty() {
        words.push(encoded_word(&text[start..]));
    }
    words.join("\r\n ")
}

fn encoded_word(chunk: &str) -> String {
    format!("=?utf-8?b?{}?=", base64_encode(chunk.as_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small RFC 2047 decoder (B and Q, UTF-8 only) for the tests: what a mail reader shows.
    pub(crate) fn decode_encoded_words(value: &str) -> String {
        let unfolded = value.replace("\r\n", "");
        let mut out = String::new();
        let mut rest = unfolded.as_str();
        let mut last_was_word = false;
        while !rest.is_empty() {
            if let Some(start) = rest.find("=?") {
                let (before, from) = rest.split_at(start);
                let parsed = from[2..].split_once('?').and_then(|(charset, r)| {
                    let (enc, r) = r.split_once('?')?;
                    let (payload, after) = r.split_once("?=")?;
                    Some((charset, enc, payload, after))
                });
                let Some((charset, enc, payload, after)) = parsed else {
                    out.push_str(rest);
                    break;
                };
                assert!(charset.eq_ignore_ascii_case("utf-8"), "{charset}");
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                let bytes = if enc.eq_ignore_ascii_case("b") {
                    base64_decode(payload).unwrap()
                } else {
                    q_decode(payload)
                };
                out.push_str(&String::from_utf8(bytes).unwrap());
                rest = after;
                last_was_word = true;
            } else {
                out.push_str(rest);
                break;
            }
        }
        out
    }

    fn q_decode(payload: &str) -> Vec<u8> {
        let b = payload.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'_' => out.push(b' '),
                b'=' => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        out
    }

    #[test]
    fn base64_round_trips_and_matches_rfc4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode("ab$c").is_none());
    }

    #[test]
    fn encoded_words_decode_to_the_text_and_stay_short() {
        let texts = [
            "=?utf-8?q?Payroll?=.csv: 1 of 2 users not imported",
            "Zoë's roster — été 2026.csv: all 1,204 users imported",
            &"é".repeat(100),
            "",
        ];
        for text in texts {
            let encoded = encoded_words(text);
            for line in encoded.split("\r\n") {
                let word = line.trim_start();
                assert!(word.len() <= 75, "{word}");
                assert!(word.starts_with("=?utf-8?b?") && word.ends_with("?="));
            }
            assert_eq!(decode_encoded_words(&encoded), text);
        }
        assert!(subject_needs_encoding("=?utf-8?q?x?=.csv"));
        assert!(subject_needs_encoding("Zoë.csv"));
        assert!(!subject_needs_encoding("roster.csv: all 3 users imported"));
    }
}
