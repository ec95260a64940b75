//! The two files shared with Python (`omnix_recs/loadgen.py`, which writes the plan and reads
//! the outcomes). Both little-endian, both versioned by their first eight bytes.
//!
//! Plan: `OMNIXLP1`, u32 method count, each method as u32 length + UTF-8 path
//! (`/package.Service/Method`); u64 call count, each call as f64 seconds after the start,
//! u32 method index, u32 length + the serialised request.
//!
//! Outcomes: `OMNIXLO1`, u64 call count, then three arrays in call order: u32 latency in
//! microseconds from the call's scheduled start, u32 send lag in microseconds (how late the
//! call started), u8 gRPC status code (`NOT_SENT` for a call dropped at the client).

use std::fmt;

use bytes::Bytes;

const PLAN_MAGIC: &[u8; 8] = b"OMNIXLP1";
const OUTCOMES_MAGIC: &[u8; 8] = b"OMNIXLO1";
/// The status byte of a call not sent because too many were in flight (gRPC codes end at 16).
pub const NOT_SENT: u8 = 255;

pub struct Call {
    pub offset_s: f64,
    pub method: usize,
    pub request: Bytes,
}

pub struct Plan {
    pub methods: Vec<String>,
    pub calls: Vec<Call>,
}

#[derive(Debug)]
pub struct PlanError(String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed plan: {}", self.0)
    }
}

/// Reads a plan, checking every length and index against the file rather than trusting it.
pub fn parse_plan(data: &[u8]) -> Result<Plan, PlanError> {
    let mut reader = Reader { data, at: 0 };
    if reader.take(8)? != PLAN_MAGIC {
        return Err(PlanError("it does not start with OMNIXLP1".into()));
    }
    let method_count = reader.u32()? as usize;
    let mut methods = Vec::with_capacity(method_count.min(1024));
    for _ in 0..method_count {
        let length = reader.u32()? as usize;
        let path =
            std::str::from_utf8(reader.take(length)?).map_err(|_| PlanError("a method path is not UTF-8".into()))?;
        if !path.starts_with('/') {
            return Err(PlanError(format!("method path {path:?} must start with '/'")));
        }
        methods.push(path.to_owned());
    }
    let call_count = reader.u64()? as usize;
    // Each call takes at least 16 bytes: a count beyond that is a corrupt file, not a big plan.
    if call_count > data.len() / 16 {
        return Err(PlanError(format!("{call_count} calls cannot fit in {} bytes", data.len())));
    }
    let mut calls = Vec::with_capacity(call_count);
    let mut previous = 0.0;
    for index in 0..call_count {
        let offset_s = f64::from_le_bytes(reader.take(8)?.try_into().expect("8 bytes"));
        if !(offset_s.is_finite() && offset_s >= previous) {
            return Err(PlanError(format!("call {index}: offset {offset_s} is not a time after the previous call's")));
        }
        previous = offset_s;
        let method = reader.u32()? as usize;
        if method >= methods.len() {
            return Err(PlanError(format!("call {index}: method {method} of {}", methods.len())));
        }
        let length = reader.u32()? as usize;
        let request = Bytes::copy_from_slice(reader.take(length)?);
        calls.push(Call { offset_s, method, request });
    }
    if reader.at != data.len() {
        return Err(PlanError(format!("{} bytes after the last call", data.len() - reader.at)));
    }
    Ok(Plan { methods, calls })
}

pub struct Outcomes {
    pub latency_us: Vec<u32>,
    pub lag_us: Vec<u32>,
    pub code: Vec<u8>,
}

impl Outcomes {
    pub fn not_sent(calls: usize) -> Self {
        Outcomes { latency_us: vec![0; calls], lag_us: vec![0; calls], code: vec![NOT_SENT; calls] }
    }

    pub fn encode(&self) -> Vec<u8> {
        let calls = self.code.len();
        let mut out = Vec::with_capacity(16 + calls * 9);
        out.extend_from_slice(OUTCOMES_MAGIC);
        out.extend_from_slice(&(calls as u64).to_le_bytes());
        for value in self.latency_us.iter().chain(&self.lag_us) {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&self.code);
        out
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], PlanError> {
        let end = self.at.checked_add(length).filter(|&end| end <= self.data.len());
        let end = end.ok_or_else(|| PlanError(format!("it ends inside a field at byte {}", self.at)))?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, PlanError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, PlanError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_bytes(methods: &[&str], calls: &[(f64, u32, &[u8])]) -> Vec<u8> {
        let mut out = PLAN_MAGIC.to_vec();
        out.extend_from_slice(&(methods.len() as u32).to_le_bytes());
        for method in methods {
            out.extend_from_slice(&(method.len() as u32).to_le_bytes());
            out.extend_from_slice(method.as_bytes());
        }
        out.extend_from_slice(&(calls.len() as u64).to_le_bytes());
        for (offset, method, request) in calls {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&(request.len() as u32).to_le_bytes());
            out.extend_from_slice(request);
        }
        out
    }

    #[test]
    fn a_plan_reads_back_as_written() {
        let data = plan_bytes(&["/a.B/C", "/grpc.health.v1.Health/Check"], &[(0.0, 1, b""), (0.5, 0, b"\x0a\x01x")]);
        let plan = parse_plan(&data).unwrap();
        assert_eq!(plan.methods, ["/a.B/C", "/grpc.health.v1.Health/Check"]);
        assert_eq!(plan.calls.len(), 2);
        assert_eq!((plan.calls[1].offset_s, plan.calls[1].method), (0.5, 0));
        assert_eq!(&plan.calls[1].request[..], b"\x0a\x01x");
    }

    #[test]
    fn a_malformed_plan_is_refused_with_what_is_wrong() {
        let good = plan_bytes(&["/a.B/C"], &[(0.0, 0, b"xy")]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"OMNIXLP0".to_vec(), "OMNIXLP1"),
            (good[..good.len() - 1].to_vec(), "ends inside a field"),
            ([good.as_slice(), b"!"].concat(), "after the last call"),
            (plan_bytes(&["/a.B/C"], &[(0.0, 1, b"")]), "method 1 of 1"),
            (plan_bytes(&["a.B/C"], &[]), "must start with '/'"),
            (plan_bytes(&["/a.B/C"], &[(1.0, 0, b""), (0.5, 0, b"")]), "after the previous"),
            (plan_bytes(&["/a.B/C"], &[(f64::NAN, 0, b"")]), "not a time"),
        ];
        for (data, expected) in cases {
            let error = parse_plan(&data).err().expect("refused").to_string();
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
        }
        let mut huge = plan_bytes(&["/a.B/C"], &[]);
        let count_at = huge.len() - 8;
        huge[count_at..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_plan(&huge).err().unwrap().to_string().contains("cannot fit"));
    }

    #[test]
    fn outcomes_are_three_arrays_after_the_header() {
        let mut outcomes = Outcomes::not_sent(2);
        outcomes.latency_us[0] = 7;
        outcomes.lag_us[1] = 3;
        outcomes.code[0] = 0;
        let data = outcomes.encode();
        assert_eq!(&data[..8], OUTCOMES_MAGIC);
        assert_eq!(u64::from_le_bytes(data[8..16].try_into().unwrap()), 2);
        assert_eq!(&data[16..], &[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, NOT_SENT]);
    }
}
