//! The primitives the record formats are written in: integers LEB128 (signed ones
//! zigzag), strings a length and UTF-8 bytes, digests referred to by position.

use serde::de::DeserializeOwned;
use time::{OffsetDateTime, UtcOffset};
use tracklayer_core::error::StoreError;
use tracklayer_core::event::codes::{self, CodeTable};
use tracklayer_core::varint;

/// `N` bytes written as `2N` lowercase hex digits, read back.
pub(crate) fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn uint(&mut self, n: u64) {
        varint::put(&mut self.0, n);
    }
    pub(super) fn int(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    pub(super) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// An event name: 0 (none), 1 and the string, or 2 and its code when Segment's specs
    /// name it ([`codes::event_name_code`]; format 3).
    pub(super) fn name(&mut self, name: Option<&str>) {
        match name.map(|n| (n, codes::event_name_code(n))) {
            Some((_, Some(code))) => self.0.extend_from_slice(&[2, code]),
            Some((n, None)) => {
                self.0.push(1);
                self.str(n);
            }
            None => self.0.push(0),
        }
    }
    /// Seconds, nanoseconds and UTC offset: the instant and how it was written, exactly.
    pub(super) fn time(&mut self, t: OffsetDateTime) {
        self.int(t.unix_timestamp());
        self.uint(u64::from(t.nanosecond()));
        self.int(i64::from(t.offset().whole_seconds()));
    }
    /// `t` as its difference from `base` in seconds, nanoseconds and UTC offset (one byte
    /// each when they are equal).
    pub(super) fn time_since(&mut self, t: OffsetDateTime, base: OffsetDateTime) {
        self.int(t.unix_timestamp() - base.unix_timestamp());
        self.int(i64::from(t.nanosecond()) - i64::from(base.nanosecond()));
        self.int(i64::from(t.offset().whole_seconds()) - i64::from(base.offset().whole_seconds()));
    }
    /// A value as its code in `table`, or as 0 and `name` when it has none.
    pub(super) fn coded<T: Copy + PartialEq>(&mut self, table: &CodeTable<T>, v: T, name: &str) {
        match table.code(v) {
            Some(code) => self.0.push(code),
            None => {
                self.0.push(0);
                self.str(name);
            }
        }
    }
    /// A value as its digest's `reference` (1 + its position among the record's digests),
    /// or, when it has none (0), as 0 and the string.
    pub(super) fn value(&mut self, v: &str, reference: u64) {
        self.uint(reference);
        if reference == 0 {
            self.str(v);
        }
    }
}

pub(super) struct Reader<'a> {
    pub(super) rest: &'a [u8],
    pub(super) context: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn corrupt(&self, why: &'static str) -> StoreError {
        StoreError::corrupt(self.context, why)
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.corrupt("a record cut short"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    pub(super) fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn uint(&mut self) -> Result<u64, StoreError> {
        varint::read(|| self.byte())?.ok_or_else(|| self.corrupt("an integer too long"))
    }
    pub(super) fn int(&mut self) -> Result<i64, StoreError> {
        let n = self.uint()?;
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }
    /// A count or length, which can never be more than the bytes left.
    pub(super) fn len(&mut self) -> Result<usize, StoreError> {
        let n = self.uint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.rest.len())
            .ok_or_else(|| self.corrupt("a length past the record's end"))
    }
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }
    pub(super) fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.corrupt("a string that is not UTF-8"))
    }
    pub(super) fn opt_str(&mut self) -> Result<Option<String>, StoreError> {
        Ok(match self.byte()? {
            0 => None,
            _ => Some(self.str()?.to_owned()),
        })
    }
    /// A name [`Writer::name`] wrote.
    pub(super) fn name(&mut self) -> Result<Option<String>, StoreError> {
        Ok(match self.byte()? {
            0 => None,
            1 => Some(self.str()?.to_owned()),
            2 => {
                let code = self.byte()?;
                let name = codes::event_name_of(code).ok_or_else(|| self.corrupt("a name code"))?;
                Some(name.to_owned())
            }
            _ => return Err(self.corrupt("an event name flag")),
        })
    }
    /// A string read as the unit variant (or string newtype) it names.
    pub(super) fn parsed<T: DeserializeOwned>(&mut self) -> Result<T, StoreError> {
        let s = self.str()?;
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|e| StoreError::corrupt(self.context, e))
    }
    /// A value written by [`Writer::coded`].
    pub(super) fn coded<T: Copy + PartialEq + DeserializeOwned>(
        &mut self,
        table: &CodeTable<T>,
    ) -> Result<T, StoreError> {
        match self.byte()? {
            0 => self.parsed(),
            code => table
                .value(code)
                .ok_or_else(|| self.corrupt("a code past its table")),
        }
    }
    pub(super) fn json(&mut self) -> Result<serde_json::Value, StoreError> {
        let s = self.str()?;
        serde_json::from_str(s).map_err(|e| StoreError::corrupt(self.context, e))
    }
    pub(super) fn time(&mut self) -> Result<OffsetDateTime, StoreError> {
        let (secs, nanos, offset) = (self.int()?, self.uint()?, self.int()?);
        let nanos = i64::try_from(nanos).map_err(|_| self.corrupt("a time out of range"))?;
        self.instant(Some(secs), Some(nanos), Some(offset))
    }
    /// A time written by [`Writer::time_since`] `base`.
    pub(super) fn time_since(
        &mut self,
        base: OffsetDateTime,
    ) -> Result<OffsetDateTime, StoreError> {
        let (secs, nanos, offset) = (self.int()?, self.int()?, self.int()?);
        self.instant(
            base.unix_timestamp().checked_add(secs),
            i64::from(base.nanosecond()).checked_add(nanos),
            i64::from(base.offset().whole_seconds()).checked_add(offset),
        )
    }
    fn instant(
        &self,
        secs: Option<i64>,
        nanos: Option<i64>,
        offset: Option<i64>,
    ) -> Result<OffsetDateTime, StoreError> {
        let t = secs
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .and_then(|t| t.replace_nanosecond(u32::try_from(nanos?).ok()?).ok());
        let offset = offset
            .and_then(|o| i32::try_from(o).ok())
            .and_then(|o| UtcOffset::from_whole_seconds(o).ok());
        t.zip(offset)
            .and_then(|(t, o)| t.checked_to_offset(o))
            .ok_or_else(|| self.corrupt("a time out of range"))
    }
    pub(super) fn value(&mut self, digests: &[[u8; 32]]) -> Result<String, StoreError> {
        match self.uint()? {
            0 => Ok(self.str()?.to_owned()),
            i => digests
                .get(usize::try_from(i - 1).unwrap_or(usize::MAX))
                .map(|d| tracklayer_core::crypto::hex_lower(d))
                .ok_or_else(|| self.corrupt("a digest reference past the table")),
        }
    }
    /// The record's digests: a count and 32 bytes each.
    pub(super) fn digests(&mut self) -> Result<Vec<[u8; 32]>, StoreError> {
        let n = self.len()?;
        (0..n).map(|_| self.array()).collect()
    }
}
