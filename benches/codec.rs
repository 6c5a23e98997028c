//! Why the processes engine frames tasks with postcard rather than JSON
//! lines: encode + decode cost of one probe task and one probe result.
//! Run: `cargo bench --bench codec`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use trident::scan::{PortState, ProbeResult, ProbeTask, Reason};

fn task() -> ProbeTask {
    ProbeTask {
        block: 3,
        ip: "10.251.0.2".parse().expect("ip"),
        port: 8080,
        timeout: Duration::from_secs(1),
        retry: 0,
        banner: None,
        device: None,
    }
}

fn result() -> ProbeResult {
    ProbeResult {
        block: 3,
        ip: "10.251.0.2".parse().expect("ip"),
        port: 8080,
        state: PortState::Open,
        reason: Reason::SynAck,
        rtt_us: Some(812),
        tries: 1,
        error: None,
        banner: None,
    }
}

fn codecs(c: &mut Criterion) {
    let (t, r) = (task(), result());
    let mut g = c.benchmark_group("round-trip");
    g.bench_function("postcard task+result", |b| {
        b.iter(|| {
            let tb = postcard::to_stdvec(&(1u64, black_box(&t))).expect("encode");
            let (_, t2): (u64, ProbeTask) = postcard::from_bytes(&tb).expect("decode");
            let rb = postcard::to_stdvec(&(1u64, black_box(&r))).expect("encode");
            let (_, r2): (u64, ProbeResult) = postcard::from_bytes(&rb).expect("decode");
            (t2, r2, tb.len() + rb.len())
        });
    });
    g.bench_function("json task+result", |b| {
        b.iter(|| {
            let tb = serde_json::to_vec(&(1u64, black_box(&t))).expect("encode");
            let (_, t2): (u64, ProbeTask) = serde_json::from_slice(&tb).expect("decode");
            let rb = serde_json::to_vec(&(1u64, black_box(&r))).expect("encode");
            let (_, r2): (u64, ProbeResult) = serde_json::from_slice(&rb).expect("decode");
            (t2, r2, tb.len() + rb.len())
        });
    });
    g.finish();
    let sizes = (
        postcard::to_stdvec(&(1u64, &t)).map_or(0, |v| v.len())
            + postcard::to_stdvec(&(1u64, &r)).map_or(0, |v| v.len()),
        serde_json::to_vec(&(1u64, &t)).map_or(0, |v| v.len()) + serde_json::to_vec(&(1u64, &r)).map_or(0, |v| v.len()),
    );
    println!("bytes per task+result: postcard {}, json {}", sizes.0, sizes.1);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
