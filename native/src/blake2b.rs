//! BLAKE2b (RFC 7693), unkeyed, any digest size up to 64 bytes: the record ids are
//! `hashlib.blake2b(text, digest_size=16).hexdigest()`, and no crate may be used here.

const IV: [u64; 8] = [
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
    0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
];

const SIGMA: [[usize; 16]; 12] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
];

const BLOCK: usize = 128;

/// An incremental BLAKE2b state (`update` any number of times, then `finish`).
pub struct Blake2b {
    h: [u64; 8],
    buffer: [u8; BLOCK],
    filled: usize,
    counter: u128,
    digest_size: usize,
}

impl Blake2b {
    /// A state for `digest_size` bytes of digest (1..=64), no key.
    pub fn new(digest_size: usize) -> Blake2b {
        assert!((1..=64).contains(&digest_size), "BLAKE2b digests are 1 to 64 bytes");
        let mut h = IV;
        h[0] ^= 0x0101_0000 ^ digest_size as u64; // parameter block: fanout 1, depth 1, no key
        Blake2b { h, buffer: [0; BLOCK], filled: 0, counter: 0, digest_size }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            // The last block is compressed by `finish` (with the final flag), so a full buffer is only
            // compressed once more input arrives.
            if self.filled == BLOCK {
                self.counter += BLOCK as u128;
                let block = self.buffer;
                self.compress(&block, false);
                self.filled = 0;
            }
            let take = (BLOCK - self.filled).min(data.len());
            self.buffer[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
        }
    }

    /// The digest, `digest_size` bytes of it, written into `out` (which must be that long).
    pub fn finish(mut self, out: &mut [u8]) {
        self.counter += self.filled as u128;
        let mut block = self.buffer;
        block[self.filled..].fill(0);
        self.compress(&block, true);
        for (index, byte) in out[..self.digest_size].iter_mut().enumerate() {
            *byte = (self.h[index / 8] >> (8 * (index % 8))) as u8;
        }
    }

    fn compress(&mut self, block: &[u8; BLOCK], last: bool) {
        let mut m = [0u64; 16];
        for (index, word) in m.iter_mut().enumerate() {
            *word = u64::from_le_bytes(block[index * 8..index * 8 + 8].try_into().unwrap_or([0; 8]));
        }
        let mut v = [0u64; 16];
        v[..8].copy_from_slice(&self.h);
        v[8..].copy_from_slice(&IV);
        v[12] ^= self.counter as u64;
        v[13] ^= (self.counter >> 64) as u64;
        if last {
            v[14] = !v[14];
        }
        for s in &SIGMA {
            mix(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            mix(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            mix(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            mix(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            mix(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            mix(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            mix(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            mix(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        for index in 0..8 {
            self.h[index] ^= v[index] ^ v[index + 8];
        }
    }
}

#[inline(always)]
fn mix(v: &mut [u64; 16], a: usize, b: usize, c: usize, d: usize, x: u64, y: u64) {
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
    v[d] = (v[d] ^ v[a]).rotate_right(32);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(24);
    v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
    v[d] = (v[d] ^ v[a]).rotate_right(16);
    v[c] = v[c].wrapping_add(v[d]);
    v[b] = (v[b] ^ v[c]).rotate_right(63);
}

/// Lower-case hex of `bytes`, appended to `out`.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 15)]);
    }
}

#[cfg(test)]
mod tests {
    use super::{push_hex, Blake2b};

    fn hex(digest_size: usize, data: &[u8]) -> String {
        let mut state = Blake2b::new(digest_size);
        state.update(data);
        let mut out = [0u8; 64];
        state.finish(&mut out);
        let mut text = Vec::new();
        push_hex(&mut text, &out[..digest_size]);
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn rfc_7693_appendix_a() {
        assert_eq!(
            hex(64, b"abc"),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
    }

    #[test]
    fn empty_input_and_block_edges() {
        // hashlib.blake2b(b"", digest_size=16).hexdigest()
        assert_eq!(hex(16, b""), "cae66941d9efbd404e4d88758ea67670");
        // The same digest however the input is split into updates, across the 128-byte block edge.
        let data: Vec<u8> = (0..=600u32).map(|n| (n * 7 % 251) as u8).collect();
        for length in [127, 128, 129, 255, 256, 257, 600] {
            let whole = hex(16, &data[..length]);
            for split in [0, 1, 64, 127, 128, 129, length] {
                let mut state = Blake2b::new(16);
                state.update(&data[..split.min(length)]);
                state.update(&data[split.min(length)..length]);
                let mut out = [0u8; 16];
                state.finish(&mut out);
                let mut text = Vec::new();
                push_hex(&mut text, &out);
                assert_eq!(String::from_utf8(text).unwrap(), whole, "length {length} split {split}");
            }
        }
    }
}
