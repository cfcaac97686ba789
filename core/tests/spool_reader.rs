//! The spool reader against damage: arbitrary bytes never panic it, and
//! whatever is flipped or cut, every record whose bytes were not touched is
//! read back exactly. Bounded proptest runs (256 cases; `PROPTEST_CASES`
//! raises it) plus an exhaustive pass over the seed corpus in
//! `tests/corpus/spool/` (every single-byte flip and every cut of each seed).

use std::path::Path;

use proptest::prelude::*;
use trackcore::spool::{encode, scan, HEADER};

type Rec = (u8, u64, Vec<u8>);

/// Encode records; returns the bytes and each record's byte range.
fn log(records: &[Rec]) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
    let mut bytes = Vec::new();
    let mut ranges = Vec::new();
    for (kind, seq, payload) in records {
        let start = bytes.len();
        encode(&mut bytes, *kind, *seq, payload).unwrap();
        ranges.push(start..bytes.len());
    }
    (bytes, ranges)
}

fn read(bytes: &[u8]) -> Vec<(usize, Rec)> {
    let mut got = Vec::new();
    scan(bytes, true, |kind, seq, payload, at| got.push((at, (kind, seq, payload.to_vec()))));
    got
}

/// Every record untouched by the damage in `hit` is read back, at its place.
fn check_survivors(records: &[Rec], ranges: &[std::ops::Range<usize>], damaged: &[u8], hit: impl Fn(&std::ops::Range<usize>) -> bool) {
    let got = read(damaged);
    for (r, range) in records.iter().zip(ranges) {
        if !hit(range) {
            assert!(got.iter().any(|(at, g)| *at == range.start && g == r), "record at {} lost", range.start);
        }
    }
}

fn record() -> impl Strategy<Value = Rec> {
    (prop_oneof![Just(1u8), Just(2u8)], any::<u64>(), prop::collection::vec(any::<u8>(), 0..300))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..2000), at_end in any::<bool>()) {
        let end = scan(&bytes, at_end, |_, _, payload, at| assert!(at + HEADER + payload.len() <= bytes.len()));
        prop_assert!(end.consumed <= bytes.len());
    }

    #[test]
    fn flipped_bytes_and_a_cut_lose_only_the_records_they_touch(
        records in prop::collection::vec(record(), 1..20),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let (mut bytes, ranges) = log(&records);
        let clean = read(&bytes);
        prop_assert_eq!(clean.len(), records.len());
        let mut touched = Vec::new();
        for (i, x) in &flips {
            let at = i.index(bytes.len());
            bytes[at] ^= x;
            touched.push(at);
        }
        let len = if do_cut { cut.index(bytes.len() + 1) } else { bytes.len() };
        bytes.truncate(len);
        check_survivors(&records, &ranges, &bytes, |r| r.end > len || touched.iter().any(|t| r.contains(t)));
    }
}

fn seeds() -> Vec<(String, Vec<Rec>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/spool");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let records: Vec<Rec> = read(&bytes).into_iter().map(|(_, r)| r).collect();
        assert!(!records.is_empty(), "{} is a seed of valid records", path.display());
        out.push((path.display().to_string(), records));
    }
    assert!(out.len() >= 2, "the seed corpus is in the repo");
    out
}

#[test]
fn every_single_byte_flip_and_every_cut_of_the_seed_corpus() {
    for (name, records) in seeds() {
        let (bytes, ranges) = log(&records);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            check_survivors(&records, &ranges, &damaged, |r| r.contains(&at));
        }
        for len in 0..=bytes.len() {
            check_survivors(&records, &ranges, &bytes[..len], |r| r.end > len);
        }
        println!("{name}: {} flips and {} cuts", bytes.len(), bytes.len() + 1);
    }
}

/// Regenerates the seed corpus (run by hand after a format change):
/// `cargo test -p trackcore --test spool_reader -- --ignored write_seed_corpus`
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/spool");
    let body = |i: u64| format!("{{\"event_name\":\"upgraded-plan\",\"created_at\":{},\"user_id\":\"u-{i}\",\"metadata\":{{\"plan\":\"pro\"}}}}", 1_700_000_000 + i).into_bytes();
    let events: Vec<Rec> = (0..6).map(|i| (1, i, body(i))).collect();
    let mut mixed: Vec<Rec> = (10..14).map(|i| (1, i, body(i))).collect();
    mixed.push((2, 0, [10u64, 12].iter().flat_map(|s| s.to_le_bytes()).collect()));
    mixed.push((1, 14, body(14)));
    mixed.push((1, 15, Vec::new()));
    for (name, recs) in [("events.log", events), ("events-and-settles.log", mixed)] {
        std::fs::write(dir.join(name), log(&recs).0).unwrap();
    }
}
