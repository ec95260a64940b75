//! `omnix-loadgen`: the native sender of `omnix loadgen --engine native`.
//!
//! Python (`omnix_recs/loadgen.py`) plans the calls (who, what, when, already serialised) and
//! reads the outcomes; this program only sends them on schedule and times them. The split
//! exists because the load generator shares the machine with the server it measures: grpc.aio's
//! client costs 0.2-0.3 ms of CPU a call, a quarter of two cores at 2,000 calls/s, so a Python
//! client caps what a Python server can be seen to do. One thread, HTTP/2 through tonic, no
//! protobuf: the requests arrive as bytes.
//!
//!     omnix-loadgen --target HOST:PORT[,HOST:PORT...] --plan FILE --out FILE
//!                   [--channels N] [--deadline-ms MS] [--max-outstanding N]
//!
//! Open loop, as the Python engine: each call starts at its scheduled time whether or not
//! earlier ones have answered, its latency runs from that time (no coordinated omission), and a
//! call due while `--max-outstanding` are in flight is not sent. Channel `i` is its own TCP
//! connection to target `i mod targets`, and call `j` goes out on channel `j mod channels`.

mod plan;

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tokio::task::{JoinSet, LocalSet};
use tokio::time::{sleep_until, timeout, Instant};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use plan::{Outcomes, Plan};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to set every call up before the first is due, as the Python engine allows.
const LEAD_IN: Duration = Duration::from_millis(50);
const MAX_CHANNELS: usize = 1000;

struct Args {
    targets: Vec<String>,
    plan: String,
    out: String,
    channels: usize,
    deadline: Duration,
    max_outstanding: usize,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("omnix-loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("omnix-loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut targets, mut plan, mut out) = (None, None, None);
    let (mut channels, mut deadline_ms, mut max_outstanding) = (16usize, 2000u64, 20_000usize);
    while let Some(flag) = words.next() {
        let mut value = || words.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--target" => targets = Some(value()?),
            "--plan" => plan = Some(value()?),
            "--out" => out = Some(value()?),
            "--channels" => channels = number(&flag, &value()?)?,
            "--deadline-ms" => deadline_ms = number(&flag, &value()?)?,
            "--max-outstanding" => max_outstanding = number(&flag, &value()?)?,
            _ => return Err(format!("unknown argument {flag:?} (see the usage in src/main.rs)")),
        }
    }
    let targets: Vec<String> = targets
        .ok_or("--target is required")?
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        return Err("--target names no HOST:PORT".into());
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(format!("--channels must be between 1 and {MAX_CHANNELS}, got {channels}"));
    }
    if deadline_ms == 0 || max_outstanding == 0 {
        return Err("--deadline-ms and --max-outstanding must be positive".into());
    }
    Ok(Args {
        targets,
        plan: plan.ok_or("--plan is required")?,
        out: out.ok_or("--out is required")?,
        channels,
        deadline: Duration::from_millis(deadline_ms),
        max_outstanding,
    })
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{flag} must be a whole number, got {text:?}"))
}

fn run(args: &Args) -> Result<(), String> {
    let data = std::fs::read(&args.plan).map_err(|e| format!("cannot read the plan {:?}: {e}", args.plan))?;
    let plan = plan::parse_plan(&data).map_err(|e| e.to_string())?;
    drop(data);
    // One thread: the sender's work per call is small, and a second thread would only take CPU
    // from the server under measurement.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let outcomes = runtime.block_on(LocalSet::new().run_until(send_all(args, plan)))?;
    std::fs::write(&args.out, outcomes.encode()).map_err(|e| format!("cannot write {:?}: {e}", args.out))
}

async fn connect(args: &Args) -> Result<Vec<Channel>, String> {
    let mut channels = Vec::with_capacity(args.channels);
    for i in 0..args.channels {
        let target = &args.targets[i % args.targets.len()];
        let endpoint = Endpoint::from_shared(format!("http://{target}"))
            .map_err(|e| format!("--target {target:?} is not HOST:PORT: {e}"))?
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT);
        // `connect` opens this channel's own connection (a clone would share it).
        let channel = timeout(CONNECT_TIMEOUT, endpoint.connect())
            .await
            .map_err(|_| format!("no connection to {target} within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

async fn send_all(args: &Args, plan: Plan) -> Result<Outcomes, String> {
    let channels = connect(args).await?;
    let paths = plan
        .methods
        .iter()
        .map(|path| PathAndQuery::try_from(path.as_str()).map_err(|e| format!("method path {path:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = Rc::new(RefCell::new(Outcomes::not_sent(plan.calls.len())));
    let in_flight = Rc::new(Cell::new(0usize));
    let mut calls = JoinSet::new();
    let start = Instant::now() + LEAD_IN;
    for (index, call) in plan.calls.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(call.offset_s);
        if due > Instant::now() {
            sleep_until(due).await;
        }
        while calls.try_join_next().is_some() {} // keep the set as small as what is in flight
        if in_flight.get() >= args.max_outstanding {
            continue; // stays NOT_SENT
        }
        in_flight.set(in_flight.get() + 1);
        let channel = channels[index % channels.len()].clone();
        let path = paths[call.method].clone();
        let (outcomes, in_flight, deadline) = (outcomes.clone(), in_flight.clone(), args.deadline);
        calls.spawn_local(async move {
            let lag = due.elapsed();
            let code = unary(channel, path, call.request, deadline).await;
            let latency = due.elapsed();
            in_flight.set(in_flight.get() - 1);
            let mut outcomes = outcomes.borrow_mut();
            outcomes.latency_us[index] = micros(latency);
            outcomes.lag_us[index] = micros(lag);
            outcomes.code[index] = code as u8;
        });
    }
    while calls.join_next().await.is_some() {}
    Ok(Rc::try_unwrap(outcomes).map_err(|_| "a call outlived the run")?.into_inner())
}

/// One call's status. The deadline travels to the server (`grpc-timeout`) and bounds the wait
/// here too, as grpc.aio's `timeout=` does.
async fn unary(channel: Channel, path: PathAndQuery, request: Bytes, deadline: Duration) -> Code {
    let call = async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let mut request = Request::new(request);
        request.set_timeout(deadline);
        grpc.unary(request, path, RawCodec).await
    };
    match timeout(deadline, call).await {
        Ok(Ok(_)) => Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => Code::DeadlineExceeded,
    }
}

fn micros(duration: Duration) -> u32 {
    duration.as_micros().min(u32::MAX as u128) as u32
}

/// Messages as bytes both ways: requests come serialised in the plan and answers are only
/// counted, so nothing is encoded or decoded here beyond gRPC's framing.
#[derive(Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Result<Args, String> {
        parse_args(words.iter().map(|w| w.to_string()))
    }

    #[test]
    fn arguments_name_what_is_wrong() {
        let base = ["--target", "127.0.0.1:1", "--plan", "p", "--out", "o"];
        let ok = args(&base).unwrap();
        assert_eq!((ok.targets.len(), ok.channels, ok.deadline), (1, 16, Duration::from_secs(2)));
        let two = args(&["--target", "127.0.0.2:1,127.0.0.3:1", "--plan", "p", "--out", "o"]).unwrap();
        assert_eq!(two.targets, ["127.0.0.2:1", "127.0.0.3:1"]);
        for (extra, expected) in [
            (&["--channels", "0"][..], "--channels must be between"),
            (&["--channels", "x"][..], "--channels must be a whole number"),
            (&["--deadline-ms", "0"][..], "must be positive"),
            (&["--rate"][..], "unknown argument"),
            (&["--out"][..], "--out needs a value"),
        ] {
            let words: Vec<&str> = base.iter().chain(extra).copied().collect();
            let error = args(&words).err().expect("refused");
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
        }
        assert!(args(&["--plan", "p", "--out", "o"]).err().unwrap().contains("--target is required"));
    }
}
