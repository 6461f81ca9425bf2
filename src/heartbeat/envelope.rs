//! The heartbeat's envelope (Octavia's `status_message.wrap_envelope`): the zlib stream of the
//! message's JSON, then the lowercase hex HMAC-SHA256 of those compressed bytes.

use ring::hmac;

/// Compression level: the message must fit one datagram, and level 6 already gets most of
/// the gain of 9 at a fraction of the time.
const LEVEL: u8 = 6;

/// `zlib(json) || hex(HMAC-SHA256(key, zlib(json)))`.
pub fn seal(json: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = miniz_oxide::deflate::compress_to_vec_zlib(json, LEVEL);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &out);
    for b in tag.as_ref() {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    out
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
        let sealed = seal(json, b"k");
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
}
