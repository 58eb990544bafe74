//! WAL positions as PostgreSQL prints them (`16/B374D848`) and as numbers.

/// `"16/B374D848"` → the byte position, `None` when it is not an LSN.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The byte position as PostgreSQL prints it.
pub fn fmt_lsn(v: u64) -> String {
    format!("{:X}/{:X}", v >> 32, v & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip_and_garbage_is_none() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(fmt_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        for bad in ["", "16", "x/1", "1/", "/1", "1/2/3"] {
            assert_eq!(parse_lsn(bad), None, "{bad:?}");
        }
    }
}
