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

/// Found by `cargo fuzz run spool_reader` (core/fuzz/README.md): the first
/// record's header is damaged (byte 0 flipped), and its payload holds, at
/// offset 88, bytes that parse as a valid 115-byte record reaching over the
/// four intact records at 116, 160, 179 and 198 and ending inside the last
/// one. The reader used to resync on that stretch and lose all four.
#[test]
fn a_record_shaped_stretch_in_a_damaged_payload_does_not_swallow_the_records_after_it() {
    let hex = concat!(
        "55430161000000ff600000e7706772a6bba29c60ffffffffffffff036465642d706c616e222c2263726561742264653a",
        "5f74613137757365725f692a706c61544364223a22752d223a7b22706c616e223a2270726f227d7d5443016000000001",
        "0000000000002246fcc86e616465642d706c616e544302190000002c22637265617465d9d9a5d55f6174223a30383530",
        "3030303030702c22757365725f696422544302000000000000000000000000c9f3286f54430200000000000000000000",
        "0000c9f3286f544302000000000000000000000000c9f3286f",
    );
    let damaged: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    assert!(matches!(trackcore::spool::parse(&damaged[88..]), trackcore::spool::Parsed::Record { size: 115, .. }), "the stretch at 88 is record-shaped");
    let intact: Vec<(usize, Rec)> = read(&damaged[116..]).into_iter().map(|(at, r)| (at + 116, r)).collect();
    assert_eq!(intact.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [116, 160, 179, 198]);
    assert_eq!(read(&damaged), intact);
}

/// The same finding, built on purpose: a damaged record whose payload ends in
/// a record header whose checksum covers the next records' first bytes, so it
/// parses as a record reaching into the middle of the last one. Every record
/// after the damaged one is read back, and the forged one is not.
#[test]
fn a_forged_record_reaching_over_intact_ones_loses_to_them() {
    let after: Vec<Rec> = vec![(1, 7, b"{\"event_name\":\"b\"}".to_vec()), (2, 0, 7u64.to_le_bytes().to_vec()), (1, 8, b"{\"event_name\":\"d\"}".to_vec())];
    let (tail, _) = log(&after);
    let mut forged = Vec::new();
    encode(&mut forged, 1, 99, &tail[..tail.len() - 5]).unwrap();
    let mut payload = b"{\"event_name\":\"a\"}".to_vec();
    payload.extend_from_slice(&forged[..HEADER]);
    let mut bytes = Vec::new();
    encode(&mut bytes, 2, 1, &payload).unwrap();
    let start = bytes.len();
    bytes.extend_from_slice(&tail);
    bytes[0] ^= 0x01;
    assert!(matches!(trackcore::spool::parse(&bytes[start - HEADER..]), trackcore::spool::Parsed::Record { seq: 99, .. }));
    let got = read(&bytes);
    let seqs: Vec<u64> = got.iter().map(|(_, (_, seq, _))| *seq).collect();
    assert_eq!(seqs, [7, 0, 8], "{got:?}");
    assert_eq!(got.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), after);
}

/// The fuzzer's second finding, against a first version of the fix that, when
/// two runs met, trusted the one made of more records: an intact record whose
/// payload ends with two record-shaped stretches, after a damaged record,
/// must be read back whole, not as the two stretches.
#[test]
fn an_intact_record_whose_payload_ends_with_record_shaped_stretches_stays_whole() {
    let mut inner = Vec::new();
    encode(&mut inner, 1, 15, b"").unwrap();
    encode(&mut inner, 1, 15, b"").unwrap();
    let mut payload = 0x5a5au64.to_le_bytes().repeat(4);
    payload.extend_from_slice(&inner);
    let records: Vec<Rec> = vec![(2, 1, 3u64.to_le_bytes().to_vec()), (2, 256, payload)];
    let (mut bytes, ranges) = log(&records);
    bytes[0] ^= 0x01;
    assert_eq!(read(&bytes), [(ranges[1].start, records[1].clone())]);
}
