//! The heartbeat's envelope (Octavia's `status_message.wrap_envelope`): the zlib stream of the
//! message's JSON, then the lowercase hex HMAC-SHA256 of those compressed bytes.
//!
//! A message is a head that changes at every heartbeat (sequence number, listener counters)
//! and a tail that seldom does (every pool's members and their status words, nearly all of
//! the text). The head is deflated up to a full flush, which ends it on a byte boundary and
//! leaves the tail nothing to refer back to; so the tail deflated once, on its own, can follow
//! any head unchanged, and an unchanged tail is not compressed again.

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use ring::hmac;

/// Compression level: on a message of 2,000 members (UUID names), level 1 is within 3% of
/// level 6's size in a quarter of its time.
const LEVEL: i32 = 1;

/// zlib's header (RFC 1950): deflate with a 32 KiB window, the fastest level, no dictionary.
const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];

/// Seals messages one after another, keeping its compressor's tables, its output buffer and
/// the last tail deflated: fresh buffers every heartbeat cost more in page faults than the
/// compression itself.
pub struct Sealer {
    compressor: Box<CompressorOxide>,
    out: Vec<u8>,
    /// The last tail, none before the first message.
    tail: Option<Vec<u8>>,
    tail_deflated: Vec<u8>,
    tail_adler: u32,
}

impl Sealer {
    pub fn new() -> Sealer {
        // Negative window bits: raw deflate, framed here.
        let flags = create_comp_flags_from_zip_params(LEVEL, -15, 0);
        Sealer {
            compressor: Box::new(CompressorOxide::new(flags)),
            out: Vec::new(),
            tail: None,
            tail_deflated: Vec::new(),
            tail_adler: 1,
        }
    }

    /// `zlib(head || tail) || hex(HMAC-SHA256(key, zlib(head || tail)))`; None if the
    /// compressor fails, which it does not on a whole input with room to write.
    pub fn seal(&mut self, head: &[u8], tail: &[u8], key: &[u8]) -> Option<&[u8]> {
        if self.tail.as_deref() != Some(tail) {
            self.tail = None;
            self.tail_deflated = self.deflate(tail, TDEFLFlush::Finish)?;
            self.tail_adler = adler32(1, tail);
            self.tail = Some(tail.to_vec());
        }
        let head_deflated = self.deflate(head, TDEFLFlush::Full)?;
        let adler = adler32_concat(adler32(1, head), self.tail_adler, tail.len());
        self.out.clear();
        self.out.extend_from_slice(&ZLIB_HEADER);
        self.out.extend_from_slice(&head_deflated);
        self.out.extend_from_slice(&self.tail_deflated);
        self.out.extend_from_slice(&adler.to_be_bytes());
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &self.out);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in tag.as_ref() {
            self.out.push(HEX[usize::from(b >> 4)]);
            self.out.push(HEX[usize::from(b & 15)]);
        }
        Some(&self.out)
    }

    /// Raw deflate blocks of `input` from a fresh dictionary, ending with `flush`: `Finish`
    /// marks the last block final, `Full` ends on a byte boundary with more to follow. One
    /// call with room for the whole output, which deflate keeps within a few bytes per 64 KiB
    /// block of the input's size; a buffer filled to its end may hold back the rest.
    fn deflate(&mut self, input: &[u8], flush: TDEFLFlush) -> Option<Vec<u8>> {
        let mut room = input.len() + input.len() / 8 + 64;
        for _ in 0..4 {
            self.compressor.reset();
            let mut out = vec![0; room];
            let (status, read, wrote) = compress(&mut self.compressor, input, &mut out, flush);
            let whole = read == input.len() && wrote < out.len();
            match (status, flush) {
                (TDEFLStatus::Done, _) | (TDEFLStatus::Okay, TDEFLFlush::Full) if whole => {
                    out.truncate(wrote);
                    return Some(out);
                }
                (TDEFLStatus::Okay, _) => room *= 2,
                _ => return None,
            }
        }
        None
    }
}

const ADLER_MOD: u32 = 65521;

/// Adler-32 (RFC 1950) of `bytes`, continuing from `adler` (1 for a fresh sum).
fn adler32(adler: u32, bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (adler & 0xffff, adler >> 16);
    // 5552 bytes is the most the sums take before they could overflow 32 bits.
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= ADLER_MOD;
        b %= ADLER_MOD;
    }
    (b << 16) | a
}

/// The Adler-32 of `first || second` from theirs and the second's length: every byte of the
/// second part adds to its running sum the first part's sum less its starting 1.
fn adler32_concat(first: u32, second: u32, second_len: usize) -> u32 {
    let m = u64::from(ADLER_MOD);
    let (a1, b1) = (u64::from(first & 0xffff), u64::from(first >> 16));
    let (a2, b2) = (u64::from(second & 0xffff), u64::from(second >> 16));
    let len = second_len as u64 % m;
    let a = (a1 + a2 + m - 1) % m;
    let b = (b1 + b2 + len * ((a1 + m - 1) % m)) % m;
    ((b as u32) << 16) | a as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The HMAC of AGENT.md's test vector: key `insecure` over CPython's zlib bytes.
    #[test]
    fn the_hmac_of_octavias_test_vector() {
        let z = unhex("78daab56ca4c51b252504a84025d2c040c28e9282815a71602951b00593999c525a979a945c5407e752d50a0203f3f07ce294b2d02328d6b01cc251e13");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"insecure"), &z);
        assert_eq!(
            hex(tag.as_ref()),
            "c4133122fe87d78192a419a13e5301a773911686c2d80afa9e49f6f0be17e3df"
        );
        // And that stream inflates to the vector's JSON.
        let json = miniz_oxide::inflate::decompress_to_vec_zlib(&z).unwrap();
        assert!(json.starts_with(br#"{"id": "aaaaaaaa"#));
    }

    #[test]
    fn sealed_messages_open_with_the_key_only() {
        let json = br#"{"id": "a", "seq": 0, "listeners": {}, "pools": {}, "ver": 3}"#;
        let mut sealer = Sealer::new();
        let (head, tail) = json.split_at(40);
        let sealed = sealer.seal(head, tail, b"k").unwrap().to_vec();
        // A second message through the same sealer, its tail reused, is whole too.
        assert_eq!(sealer.seal(head, tail, b"k").unwrap(), &sealed[..]);
        let (z, tag) = sealed.split_at(sealed.len() - 64);
        assert!(tag
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        assert!(hmac::verify(&key, z, &unhex(std::str::from_utf8(tag).unwrap())).is_ok());
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"other");
        assert!(hmac::verify(&other, z, &unhex(std::str::from_utf8(tag).unwrap())).is_err());
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec_zlib(z).unwrap(),
            json
        );
        assert_eq!(&z[..1], &[0x78]);
    }

    #[test]
    fn heads_and_tails_inflate_whole_whichever_changes() {
        let mut sealer = Sealer::new();
        let member =
            |i: usize, word: &str| format!("\"{i:08x}-aaaa-4bbb-8ccc-{i:012x}\":\"{word}\",");
        let up: String = (0..3000).map(|i| member(i, "UP")).collect();
        let down: String = (0..3000).map(|i| member(i * 7, "DOWN")).collect();
        for (seq, tail) in [
            (0, &up),
            (1, &up),
            (2, &down),
            (3, &String::new()),
            (4, &up),
        ] {
            let head = format!("{{\"seq\":{seq},\"listeners\":{{}},\"pools\":");
            let sealed = sealer.seal(head.as_bytes(), tail.as_bytes(), b"k").unwrap();
            let z = &sealed[..sealed.len() - 64];
            // decompress_to_vec_zlib checks the Adler-32 as well.
            let json = miniz_oxide::inflate::decompress_to_vec_zlib(z).unwrap();
            assert_eq!(json, format!("{head}{tail}").as_bytes(), "message {seq}");
            assert!(z.len() < (head.len() + tail.len()) / 2 + 64, "{}", z.len());
        }
    }

    #[test]
    fn adler32_whole_and_joined() {
        // RFC 1950's checksum of "Wikipedia", as every implementation gives it.
        assert_eq!(adler32(1, b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(1, b""), 1);
        let long: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for cut in [0, 1, 5552, 7000, 20_000] {
            let (a, b) = long.split_at(cut);
            let joined = adler32_concat(adler32(1, a), adler32(1, b), b.len());
            assert_eq!(joined, adler32(1, &long), "cut at {cut}");
            assert_eq!(adler32(adler32(1, a), b), adler32(1, &long));
        }
    }
}
