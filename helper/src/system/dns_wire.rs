//! DNS messages on the wire (RFC 1035), as much as culvertd needs to look up an endpoint's addresses itself
//! while the kill switch refuses everyone else's lookups: a query for one name's A or AAAA records, and the
//! addresses an answer gives for that name.
//!
//! The answer comes from the network, so its parser takes hostile bytes: every read is bounds-checked, a
//! compression pointer may only point backwards (so no chain of them can loop), and a CNAME chain is followed a
//! bounded number of times.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The largest message over UDP without EDNS0; a longer answer comes truncated, and is asked again over TCP.
pub const MAX_UDP_MESSAGE: usize = 512;
/// A name's longest wire form (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;
/// How many CNAMEs are followed from the name asked: resolvers give up at about this many too.
const MAX_CNAME_HOPS: usize = 8;
/// How many compression pointers one name may take: each points further back, so the message's length bounds
/// them anyway; this bounds the work on a long one.
const MAX_POINTERS: usize = 64;
/// Addresses kept from one answer: an endpoint needs one.
const MAX_ADDRESSES: usize = 16;

const HEADER: usize = 12;
const CLASS_IN: u16 = 1;
const TYPE_CNAME: u16 = 5;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;
const RCODE_NXDOMAIN: u16 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("`{0}` is not a host name DNS can carry")]
    BadName(String),
    #[error("the answer is malformed: {0}")]
    Malformed(&'static str),
    #[error("the answer is for another question")]
    OtherQuestion,
    #[error("the answer was truncated")]
    Truncated,
    #[error("the name does not exist (NXDOMAIN)")]
    NoSuchName,
    #[error("the server answered with error code {0}")]
    ServerError(u16),
}

/// A query with id `id` for `name`'s records of type `kind`, recursion desired.
pub fn query(id: u16, name: &str, kind: RecordType) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(HEADER + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut out)?;
    out.extend_from_slice(&kind.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), WireError> {
    let bad = || WireError::BadName(name.to_owned());
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() + 2 > MAX_NAME {
        return Err(bad());
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL || !label.is_ascii() {
            return Err(bad());
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// The addresses the answer `message` gives for `name`'s records of type `kind`, following CNAMEs from `name`;
/// empty when the name exists but has none of that type. The answer must carry the query's id and question.
pub fn addresses(message: &[u8], id: u16, name: &str, kind: RecordType) -> Result<Vec<IpAddr>, WireError> {
    let mut r = Reader { message, at: 0 };
    let got_id = r.u16()?;
    let flags = r.u16()?;
    let (questions, answers) = (r.u16()?, r.u16()?);
    r.skip(4)?;
    if got_id != id || flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 || questions != 1 {
        return Err(WireError::OtherQuestion);
    }
    let asked = wire_name(name)?;
    if r.name()? != asked || r.u16()? != kind.code() || r.u16()? != CLASS_IN {
        return Err(WireError::OtherQuestion);
    }
    if flags & FLAG_TC != 0 {
        return Err(WireError::Truncated);
    }
    match flags & RCODE_MASK {
        0 => {}
        RCODE_NXDOMAIN => return Err(WireError::NoSuchName),
        code => return Err(WireError::ServerError(code)),
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        let owner = r.name()?;
        let (rtype, class) = (r.u16()?, r.u16()?);
        r.skip(4)?;
        let length = usize::from(r.u16()?);
        let start = r.at;
        r.skip(length)?;
        if class != CLASS_IN {
            continue;
        }
        let data = match rtype {
            TYPE_CNAME => Data::Alias(Reader { message, at: start }.name()?),
            t if t == kind.code() => Data::Address(address(&message[start..start + length], kind)?),
            _ => continue,
        };
        records.push((owner, data));
    }
    // From the name asked, through its aliases, to the name that has the addresses.
    let mut current = asked;
    for _ in 0..=MAX_CNAME_HOPS {
        let found: Vec<IpAddr> = records
            .iter()
            .filter(|(owner, _)| *owner == current)
            .filter_map(|(_, d)| match d {
                Data::Address(a) => Some(*a),
                Data::Alias(_) => None,
            })
            .take(MAX_ADDRESSES)
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
        let alias = records.iter().find_map(|(owner, d)| match d {
            Data::Alias(target) if *owner == current => Some(target.clone()),
            _ => None,
        });
        match alias {
            Some(target) => current = target,
            None => return Ok(Vec::new()),
        }
    }
    Err(WireError::Malformed("a chain of aliases too long"))
}

enum Data {
    Address(IpAddr),
    Alias(Vec<u8>),
}

fn address(data: &[u8], kind: RecordType) -> Result<IpAddr, WireError> {
    match kind {
        RecordType::A => <[u8; 4]>::try_from(data).map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        RecordType::Aaaa => <[u8; 16]>::try_from(data).map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    }
    .map_err(|_| WireError::Malformed("an address of the wrong length"))
}

/// `name` as the parser compares names: lower-case labels joined by dots, no final dot.
fn wire_name(name: &str) -> Result<Vec<u8>, WireError> {
    let mut encoded = Vec::new();
    encode_name(name, &mut encoded)?;
    let mut r = Reader { message: &encoded, at: 0 };
    r.name().map_err(|_| WireError::BadName(name.to_owned()))
}

struct Reader<'a> {
    message: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.message.len());
        let end = end.ok_or(WireError::Malformed("it ends early"))?;
        let out = &self.message[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.take(n).map(|_| ())
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A name at the reader's place, which moves past it (past its first pointer, if it has one).
    fn name(&mut self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        let mut at = self.at;
        let mut pointers = 0;
        let mut resume = None;
        loop {
            let length = *self.message.get(at).ok_or(WireError::Malformed("a name ends early"))?;
            match length & 0xc0 {
                0x00 if length == 0 => {
                    self.at = resume.unwrap_or(at + 1);
                    return Ok(out);
                }
                0x00 => {
                    let label = self
                        .message
                        .get(at + 1..at + 1 + usize::from(length))
                        .ok_or(WireError::Malformed("a label ends early"))?;
                    if !out.is_empty() {
                        out.push(b'.');
                    }
                    out.extend(label.iter().map(u8::to_ascii_lowercase));
                    if out.len() > MAX_NAME {
                        return Err(WireError::Malformed("a name too long"));
                    }
                    at += 1 + usize::from(length);
                }
                0xc0 => {
                    let low = *self.message.get(at + 1).ok_or(WireError::Malformed("a pointer ends early"))?;
                    let target = usize::from(u16::from_be_bytes([length & 0x3f, low]));
                    pointers += 1;
                    if target >= at || pointers > MAX_POINTERS {
                        return Err(WireError::Malformed("a name pointer that does not point back"));
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => return Err(WireError::Malformed("a label of an unknown kind")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `q` with `records` (owner, type, data) in its answer section, the owner given as wire bytes.
    fn answer(q: &[u8], flags: u16, records: &[(&[u8], u16, &[u8])]) -> Vec<u8> {
        let mut out = q.to_vec();
        out[2..4].copy_from_slice(&(FLAG_QR | FLAG_RD | 0x0080 | flags).to_be_bytes());
        out[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (owner, rtype, data) in records {
            out.extend_from_slice(owner);
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&300u32.to_be_bytes());
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    /// A pointer to the question's name, which starts right after the header.
    const TO_QUESTION: &[u8] = &[0xc0, 12];

    #[test]
    fn a_query_is_one_question_with_recursion_desired() {
        let q = query(0xbeef, "Peer.Example.", RecordType::Aaaa).unwrap();
        assert_eq!(&q[..12], &[0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x04Peer\x07Example\x00\x00\x1c\x00\x01");
        for bad in ["", ".", "a..b", &"x".repeat(64), &format!("{}.x", "a.".repeat(127)), "ünï.example"] {
            assert!(matches!(query(1, bad, RecordType::A), Err(WireError::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn addresses_follow_aliases_from_the_name_asked() {
        let q = query(7, "peer.example", RecordType::A).unwrap();
        // peer.example is an alias of vpn.example (written after it, pointing back into its own data).
        let cname_data = b"\x03vpn\xc0\x11";
        let vpn_at = q.len() + 12;
        let vpn_owner = [0xc0, u8::try_from(vpn_at).unwrap()];
        let msg = answer(
            &q,
            0,
            &[
                (TO_QUESTION, TYPE_CNAME, cname_data),
                (&vpn_owner, 1, &[192, 0, 2, 7]),
                (&vpn_owner, 1, &[192, 0, 2, 8]),
            ],
        );
        let got = addresses(&msg, 7, "PEER.example.", RecordType::A).unwrap();
        assert_eq!(got, vec![IpAddr::from([192, 0, 2, 7]), IpAddr::from([192, 0, 2, 8])]);
        // An address for another name, with no alias leading to it, is not an answer.
        let stray = answer(&q, 0, &[(b"\x05other\x07example\x00", 1, &[192, 0, 2, 9])]);
        assert_eq!(addresses(&stray, 7, "peer.example", RecordType::A).unwrap(), Vec::<IpAddr>::new());
    }

    #[test]
    fn answers_to_other_questions_and_errors_are_told_apart() {
        let q = query(7, "peer.example", RecordType::A).unwrap();
        let ok = answer(&q, 0, &[(TO_QUESTION, 1, &[192, 0, 2, 7])]);
        assert_eq!(addresses(&ok, 8, "peer.example", RecordType::A), Err(WireError::OtherQuestion));
        assert_eq!(addresses(&ok, 7, "other.example", RecordType::A), Err(WireError::OtherQuestion));
        assert_eq!(addresses(&ok, 7, "peer.example", RecordType::Aaaa), Err(WireError::OtherQuestion));
        assert_eq!(addresses(&q, 7, "peer.example", RecordType::A), Err(WireError::OtherQuestion), "a query");
        assert_eq!(addresses(&answer(&q, 3, &[]), 7, "peer.example", RecordType::A), Err(WireError::NoSuchName));
        assert_eq!(addresses(&answer(&q, 2, &[]), 7, "peer.example", RecordType::A), Err(WireError::ServerError(2)));
        assert_eq!(addresses(&answer(&q, FLAG_TC, &[]), 7, "peer.example", RecordType::A), Err(WireError::Truncated));
        let short = answer(&q, 0, &[(TO_QUESTION, 1, &[192, 0, 2])]);
        assert!(matches!(addresses(&short, 7, "peer.example", RecordType::A), Err(WireError::Malformed(_))));
    }

    #[test]
    fn hostile_names_are_refused_not_followed() {
        let q = query(7, "peer.example", RecordType::A).unwrap();
        // A pointer to itself, one forwards, and one past the end.
        for owner in [&[0xc0, 0x1e][..], &[0xc0, 0x7f], &[0xc0, 0xff]] {
            let at = q.len();
            let mut msg = answer(&q, 0, &[(owner, 1, &[192, 0, 2, 7])]);
            if owner[1] == 0x1e {
                msg[at + 1] = u8::try_from(at).unwrap();
            }
            assert!(matches!(addresses(&msg, 7, "peer.example", RecordType::A), Err(WireError::Malformed(_))));
        }
        // Aliases that lead round in a circle end, refused.
        let msg = answer(&q, 0, &[(TO_QUESTION, TYPE_CNAME, b"\x01a\x00"), (b"\x01a\x00", TYPE_CNAME, &[0xc0, 12])]);
        assert!(matches!(addresses(&msg, 7, "peer.example", RecordType::A), Err(WireError::Malformed(_))));
        // Every truncation of a good answer is an error, never a panic.
        let ok = answer(&q, 0, &[(TO_QUESTION, 1, &[192, 0, 2, 7])]);
        for end in 0..ok.len() {
            assert!(addresses(&ok[..end], 7, "peer.example", RecordType::A).is_err(), "cut at {end}");
        }
    }
}
