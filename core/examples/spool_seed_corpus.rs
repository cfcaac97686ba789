//! Regenerates the spool reader's seed corpus, `core/tests/corpus/spool/`
//! (run by hand after a change to the record format):
//! `cargo run -p trackcore --example spool_seed_corpus`
//! `core/tests/spool_reader.rs` flips every byte and cuts at every offset of
//! each seed; `core/fuzz` starts its `spool_reader` corpus from them.

use std::path::Path;

use trackcore::spool::encode;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/spool");
    let body = |i: u64| {
        format!("{{\"event_name\":\"upgraded-plan\",\"created_at\":{},\"user_id\":\"u-{i}\",\"metadata\":{{\"plan\":\"pro\"}}}}", 1_700_000_000 + i)
            .into_bytes()
    };
    let events: Vec<(u8, u64, Vec<u8>)> = (0..6).map(|i| (1, i, body(i))).collect();
    let mut mixed: Vec<(u8, u64, Vec<u8>)> = (10..14).map(|i| (1, i, body(i))).collect();
    mixed.push((2, 0, [10u64, 12].iter().flat_map(|s| s.to_le_bytes()).collect()));
    mixed.push((1, 14, body(14)));
    mixed.push((1, 15, Vec::new()));
    for (name, records) in [("events.log", events), ("events-and-settles.log", mixed)] {
        let mut bytes = Vec::new();
        for (kind, seq, payload) in &records {
            encode(&mut bytes, *kind, *seq, payload).expect("writing to a Vec");
        }
        std::fs::write(dir.join(name), bytes).expect("the corpus directory is writable");
        println!("wrote {}", dir.join(name).display());
    }
}
