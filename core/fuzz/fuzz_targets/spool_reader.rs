//! The spool reader on arbitrary bytes, and on real logs with one byte
//! flipped (and maybe a cut tail).
//!
//! Invariants on the raw input: `parse` and `scan` never panic; every record
//! `scan` reports lies inside the buffer, after the previous one, and parses
//! to the same record at its offset; `consumed <= len`, all of it when
//! `at_end`, and otherwise what is left is an incomplete record.
//!
//! Roundtrip: the same input also drives a few records through `encode`; a
//! clean log reads back exactly, and after one byte is flipped (and the tail
//! maybe cut) every record whose bytes were not touched is read back exactly
//! at its offset, unless a record read from the damaged bytes covers it whole
//! (a record-shaped stretch in a payload: see `resync` in core/src/spool.rs).

#![no_main]

use std::ops::Range;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use trackcore::spool::{encode, parse, scan, Parsed, HEADER};

type Rec = (u8, u64, Vec<u8>);

fn read(bytes: &[u8], at_end: bool) -> Vec<(usize, Rec)> {
    let mut got = Vec::new();
    scan(bytes, at_end, |kind, seq, payload, at| got.push((at, (kind, seq, payload.to_vec()))));
    got
}

fn raw(data: &[u8]) {
    let _ = parse(data);
    for at_end in [false, true] {
        let mut last_end = 0;
        let end = scan(data, at_end, |kind, seq, payload, at| {
            assert!(at >= last_end, "record at {at} overlaps the one ending at {last_end}");
            assert!(at + HEADER + payload.len() <= data.len(), "record at {at} runs past the buffer");
            match parse(&data[at..]) {
                Parsed::Record { kind: k, seq: s, payload: p, size } => {
                    assert_eq!((k, s, p, size), (kind, seq, payload, HEADER + payload.len()));
                }
                other => panic!("reported record at {at} parses as {other:?}"),
            }
            last_end = at + HEADER + payload.len();
        });
        assert!(end.consumed <= data.len());
        assert!(end.consumed >= last_end);
        if at_end {
            assert_eq!(end.consumed, data.len(), "at the end everything is consumed");
        } else if end.consumed < data.len() {
            assert_eq!(parse(&data[end.consumed..]), Parsed::Incomplete, "what is left is a record still being written");
        }
    }
}

fn roundtrip(u: &mut Unstructured) -> Result<()> {
    let n = u.int_in_range(1..=8)?;
    let mut records: Vec<Rec> = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = if u.arbitrary::<bool>()? { 1 } else { 2 };
        let seq = u.arbitrary()?;
        let len = u.int_in_range(0..=200)?;
        let payload = u.bytes(len.min(u.len()))?.to_vec();
        records.push((kind, seq, payload));
    }
    let mut bytes = Vec::new();
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for (kind, seq, payload) in &records {
        let start = bytes.len();
        encode(&mut bytes, *kind, *seq, payload).unwrap();
        ranges.push(start..bytes.len());
    }
    let clean: Vec<Rec> = read(&bytes, true).into_iter().map(|(_, r)| r).collect();
    assert_eq!(clean, records, "a clean log reads back exactly");

    let at = u.choose_index(bytes.len())?;
    let x = u.int_in_range(1..=255u8)?;
    bytes[at] ^= x;
    let len = if u.arbitrary::<bool>()? { u.int_in_range(0..=bytes.len())? } else { bytes.len() };
    bytes.truncate(len);
    let got = read(&bytes, true);
    if std::env::var_os("SPOOL_FUZZ_DEBUG").is_some() {
        eprintln!("records: {:?}", records.iter().zip(&ranges).map(|(r, g)| (g.clone(), r.0, r.1, r.2.len())).collect::<Vec<_>>());
        eprintln!("got: {:?}", got.iter().map(|(at, r)| (*at, r.0, r.1, r.2.len())).collect::<Vec<_>>());
        eprintln!("bytes: {:02x?}", bytes);
    }
    for (r, range) in records.iter().zip(&ranges) {
        if range.contains(&at) || range.end > len {
            continue;
        }
        // The one case the bytes cannot decide: a record-shaped stretch in
        // the damaged bytes that was read as a record and covers this one
        // whole, its run meeting this record's run with as many records
        // (scan's `resync` keeps the earlier one then).
        if got.iter().any(|(off, g)| *off < range.start && off + HEADER + g.2.len() >= range.end) {
            continue;
        }
        assert!(
            got.iter().any(|(off, g)| *off == range.start && g == r),
            "record at {} lost after flipping byte {at} by {x:#04x} and cutting at {len}",
            range.start
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    let _ = roundtrip(&mut Unstructured::new(data));
});
