//! Unsigned LEB128 integers: seven bits a byte, least significant first, the high bit set on
//! every byte but the last. The queue's by-reference bodies and the embedded store's event
//! records write their integers and lengths so.

/// Appends `n`.
pub fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads one integer, a byte at a time from `next`; `None` when it runs past 64 bits.
pub fn read<E>(mut next: impl FnMut() -> Result<u8, E>) -> Result<Option<u64>, E> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = next()?;
        n |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(Some(n));
        }
    }
    Ok(None)
}
