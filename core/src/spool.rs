//! The disk spool: the second [`EventStore`], for events that must survive
//! an outage, a crash or a deploy.
//!
//! Layout: `spool_dir/wN/` is one live tracker's *slot*, locked with
//! `flock` on `wN/lock` for as long as the tracker runs. A tracker takes the
//! first slot it can lock, so two processes (or two trackers in one process,
//! or a forked child and its parent) never write the same files; a new
//! process on the same directory takes a slot whose owner is gone and
//! delivers what it left. Inside a slot, `seg-<id>.log` segment files hold an
//! append-only log of checksummed records:
//!
//! ```text
//! "TC" | kind: u8 | len: u32 LE | seq: u64 LE | crc32: u32 LE | payload (len bytes)
//! ```
//!
//! An `EVENT` record carries one body (the exact JSON posted to `/events`,
//! never the token) under its sequence number; a `SETTLE` record lists
//! sequence numbers that were settled (delivered, failed, dropped). The CRC
//! covers kind, length, sequence number and payload, so a torn write (power
//! loss) or a corrupt byte is found, skipped, counted and reported. A segment
//! is deleted once every event in it and in the segments before it settled.
//!
//! Memory stays bounded: at most `window` bodies are kept in memory ("hot");
//! while more are waiting, new events are only on disk ("cold", counted in
//! the `spooled` gauge) and read back in order as the hot ones drain. All disk
//! work happens on the dispatcher thread; `track()` never touches the disk.
//! Writes reach the operating system every dispatcher cycle (a few
//! milliseconds: what a `kill -9` can lose) and the disk every
//! `spool_sync_interval` (what a power loss can lose); `Tracker::sync` forces both.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stats::Counters;
use crate::store::{Appended, Body, EventStore};

const MAGIC: [u8; 2] = *b"TC";
/// Bytes before a record's payload.
pub const HEADER: usize = 19;
const KIND_EVENT: u8 = 1;
const KIND_SETTLE: u8 = 2;
/// A length beyond this is corruption, not an event (bodies are a few KB).
const MAX_PAYLOAD: u32 = 8 << 20;
/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 4 << 20;
/// Bytes read from disk at once when cold events are read back.
const READ_CHUNK: usize = 1 << 20;
/// Slots tried before giving up (`w0` … `w1023`).
const MAX_SLOTS: usize = 1024;

/// One record, as parsed from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole, valid record of `size` bytes.
    Record {
        kind: u8,
        seq: u64,
        payload: &'a [u8],
        size: usize,
    },
    /// Valid so far, but the bytes end before the record does.
    Incomplete,
    /// Not a valid record at this position.
    Corrupt,
}

fn crc(kind: u8, len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Write one record.
pub fn encode(out: &mut impl Write, kind: u8, seq: u64, payload: &[u8]) -> io::Result<usize> {
    let len = payload.len() as u32;
    let mut header = [0u8; HEADER];
    header[0..2].copy_from_slice(&MAGIC);
    header[2] = kind;
    header[3..7].copy_from_slice(&len.to_le_bytes());
    header[7..15].copy_from_slice(&seq.to_le_bytes());
    header[15..19].copy_from_slice(&crc(kind, len, seq, payload).to_le_bytes());
    out.write_all(&header)?;
    out.write_all(payload)?;
    Ok(HEADER + payload.len())
}

/// Parse the record at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < 2 {
        return if buf.first().is_none_or(|b| *b == MAGIC[0]) {
            Parsed::Incomplete
        } else {
            Parsed::Corrupt
        };
    }
    if buf[0..2] != MAGIC {
        return Parsed::Corrupt;
    }
    if buf.len() < HEADER {
        return Parsed::Incomplete;
    }
    let kind = buf[2];
    let len = u32::from_le_bytes([buf[3], buf[4], buf[5], buf[6]]);
    if len > MAX_PAYLOAD || !(kind == KIND_EVENT || kind == KIND_SETTLE) {
        return Parsed::Corrupt;
    }
    let size = HEADER + len as usize;
    if buf.len() < size {
        return Parsed::Incomplete;
    }
    let seq = u64::from_le_bytes(buf[7..15].try_into().expect("8 bytes"));
    let sum = u32::from_le_bytes(buf[15..19].try_into().expect("4 bytes"));
    let payload = &buf[HEADER..size];
    if crc(kind, len, seq, payload) != sum {
        return Parsed::Corrupt;
    }
    Parsed::Record {
        kind,
        seq,
        payload,
        size,
    }
}

/// What walking a run of bytes found besides its records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// Stretches of bytes skipped because they held no valid record.
    pub corrupt: u32,
    /// The bytes ended inside a record (a torn write at the tail).
    pub torn: bool,
    /// Bytes consumed: up to the end, or to the start of an incomplete tail record.
    pub consumed: usize,
}

/// Walk the records in `buf`, calling `f(kind, seq, payload, offset)` for
/// each valid one. A corrupt stretch is skipped up to the next valid record
/// (found by its magic and checksum) and counted; bytes ending inside a
/// record are a torn tail when `at_end`, and are left unconsumed otherwise.
pub fn scan(buf: &[u8], at_end: bool, mut f: impl FnMut(u8, u64, &[u8], usize)) -> ScanEnd {
    let mut end = ScanEnd::default();
    let mut pos = 0;
    while pos < buf.len() {
        match parse(&buf[pos..]) {
            Parsed::Record {
                kind,
                seq,
                payload,
                size,
            } => {
                f(kind, seq, payload, pos);
                pos += size;
            }
            bad => {
                // Is there a valid record further on? Then this was corruption.
                match resync(buf, pos + 1) {
                    Some(p) => {
                        end.corrupt += 1;
                        pos = p;
                    }
                    None if bad == Parsed::Incomplete && !at_end => break,
                    None => {
                        if bad == Parsed::Incomplete {
                            end.torn = true;
                        } else {
                            end.corrupt += 1;
                        }
                        pos = buf.len();
                    }
                }
            }
        }
    }
    end.consumed = pos;
    end
}

/// The size of the valid record at `at`, if there is one.
fn record_at(buf: &[u8], at: usize) -> Option<usize> {
    if buf.get(at) != Some(&MAGIC[0]) {
        return None;
    }
    match parse(&buf[at..]) {
        Parsed::Record { size, .. } => Some(size),
        _ => None,
    }
}

/// Whether the run of back-to-back valid records from `later` ends further
/// on than the run from `earlier` (`earlier < later`, `later` inside
/// `earlier`'s first record). If the runs meet, they end alike and the earlier
/// one is kept. They are walked side by side only until they meet or one
/// stops, so the cost is the stretch where they disagree, not the rest of the
/// buffer.
fn later_run_wins(buf: &[u8], earlier: usize, later: usize) -> bool {
    let (mut a, mut b) = (earlier, later);
    loop {
        if a == b {
            return false;
        }
        if a < b {
            match record_at(buf, a) {
                Some(size) => a += size,
                None => return true,
            }
        } else {
            match record_at(buf, b) {
                Some(size) => b += size,
                None => return false,
            }
        }
    }
}

/// After a corrupt stretch: the offset of the next record to trust, at or
/// after `from`. The first valid-looking record is not enough: a damaged
/// record's payload can hold bytes that parse as a record (a settle list is
/// arbitrary bytes), and such a record can reach over the intact records
/// after it (found by `cargo fuzz`, core/fuzz/README.md). So every valid
/// record that starts inside the chosen one competes with it, and the one
/// whose run reaches further wins ([`later_run_wins`]). Runs that meet keep
/// the earlier record: an intact record whose payload merely ends with
/// record-shaped stretches must stay whole (the fuzzer found that case too),
/// and from the bytes alone that cannot be told from a stretch that reaches
/// exactly over whole records.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let find = |from: usize, to: usize| (from..to.min(buf.len())).find(|&p| record_at(buf, p).is_some());
    let mut best = find(from, buf.len())?;
    let mut limit = best + record_at(buf, best).unwrap_or(0);
    let mut p = best + 1;
    while let Some(q) = find(p, limit) {
        if later_run_wins(buf, best, q) {
            best = q;
            limit = q + record_at(buf, q).unwrap_or(0);
        }
        p = q + 1;
    }
    Some(best)
}

/// The lock on one slot, held while its tracker lives. A forked child closes
/// its copy of the parent's (`release_in_child`), so a slot is free again as
/// soon as its owner is gone.
pub(crate) struct SlotLock {
    file: Mutex<Option<File>>,
}

impl SlotLock {
    fn take(path: &Path) -> io::Result<Option<SlotLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(Some(SlotLock {
                file: Mutex::new(Some(file)),
            }));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }

    fn release(&self) {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// In a forked child: drop this process's reference to the parent's lock
    /// (the parent keeps it). Never waits.
    pub fn release_in_child(&self) {
        if let Ok(mut f) = self.file.try_lock() {
            f.take();
        }
    }
}

struct Segment {
    id: u64,
    /// Sequence numbers in this segment are at least this (and below the next segment's).
    first_seq: u64,
    /// Events in it not settled yet.
    live: u64,
    bytes: u64,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016x}.log"))
}

/// Where cold events are read back from.
struct Cursor {
    seg: u64,
    offset: u64,
    /// Bytes read ahead from `offset` and not parsed yet.
    buf: Vec<u8>,
    /// Inside a damaged stretch (counted once).
    skipping: bool,
}

/// A slot taken and ready to recover: what `open` does on the caller's thread.
pub(crate) struct SpoolStore {
    dir: PathBuf,
    lock: Arc<SlotLock>,
    counters: Arc<Counters>,
    window: usize,
    max_bytes: u64,
    sync_every: Duration,
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    next_seq: u64,
    next_seg: u64,
    hot: BTreeMap<u64, Body>,
    cold: u64,
    /// The sequence number of the next cold event is at least this.
    cold_floor: u64,
    cursor: Option<Cursor>,
    /// Segments up to this id were scanned at recovery: damage in them is counted already.
    scanned_upto: Option<u64>,
    /// Settled sequence numbers read at recovery, for skipping their events.
    settled_at_start: HashSet<u64>,
    settles: Vec<u64>,
    /// Bytes in the writer not yet handed to the operating system.
    unwritten: bool,
    /// Bytes handed to the operating system and not synced to disk yet.
    unsynced: bool,
    last_sync: Instant,
    total_bytes: u64,
    /// A write failed: why, for the log line (once per change).
    failing: Option<String>,
    pending_logs: Vec<(log::Level, String)>,
}

impl SpoolStore {
    /// Take a slot in `root` (creating it, owner-only). Fast: no segment is read yet.
    pub fn open(
        root: &Path,
        window: usize,
        max_bytes: u64,
        sync_every: Duration,
        counters: Arc<Counters>,
    ) -> io::Result<SpoolStore> {
        make_private_dir(root)?;
        for i in 0..MAX_SLOTS {
            let dir = root.join(format!("w{i}"));
            make_private_dir(&dir)?;
            if let Some(lock) = SlotLock::take(&dir.join("lock"))? {
                return Ok(SpoolStore {
                    dir,
                    lock: Arc::new(lock),
                    counters,
                    window: window.max(1),
                    max_bytes,
                    sync_every,
                    segments: VecDeque::new(),
                    writer: None,
                    next_seq: 0,
                    next_seg: 0,
                    hot: BTreeMap::new(),
                    cold: 0,
                    cold_floor: 0,
                    cursor: None,
                    scanned_upto: None,
                    settled_at_start: HashSet::new(),
                    settles: Vec::new(),
                    unwritten: false,
                    unsynced: false,
                    last_sync: Instant::now(),
                    total_bytes: 0,
                    failing: None,
                    pending_logs: Vec::new(),
                });
            }
        }
        Err(io::Error::other(format!(
            "all {MAX_SLOTS} slots of the spool directory are in use by live trackers"
        )))
    }

    /// The lock, for the tracker to release in a forked child.
    pub fn lock(&self) -> Arc<SlotLock> {
        self.lock.clone()
    }

    fn note_failure(&mut self, what: &str, e: &io::Error) {
        let reason = format!("{what}: {e}");
        if self.failing.as_deref() != Some(reason.as_str()) {
            self.pending_logs.push((
                log::Level::Error,
                format!("the spool in {} cannot be written ({reason}); events are kept in memory and written once it can", self.dir.display()),
            ));
            self.failing = Some(reason);
        }
    }

    fn note_ok(&mut self) {
        if self.failing.take().is_some() {
            self.pending_logs.push((
                log::Level::Info,
                format!("the spool in {} is written again", self.dir.display()),
            ));
        }
    }

    fn start_segment(&mut self) -> io::Result<()> {
        self.write_out()?;
        let id = self.next_seg;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(&self.dir, id))?;
        // The new name must survive a power loss too.
        File::open(&self.dir).and_then(|d| d.sync_all())?;
        self.next_seg += 1;
        self.writer = Some(BufWriter::with_capacity(256 << 10, file));
        self.segments.push_back(Segment {
            id,
            first_seq: self.next_seq,
            live: 0,
            bytes: 0,
        });
        Ok(())
    }

    fn write_record(&mut self, kind: u8, seq: u64, payload: &[u8]) -> io::Result<()> {
        let needs_new = match self.segments.back() {
            None => true,
            Some(s) => self.writer.is_none() || (s.bytes >= SEGMENT_BYTES && kind == KIND_EVENT),
        };
        if needs_new {
            self.start_segment()?;
        }
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("no open segment"));
        };
        let n = encode(w, kind, seq, payload)? as u64;
        if let Some(s) = self.segments.back_mut() {
            s.bytes += n;
            if kind == KIND_EVENT {
                s.live += 1;
            }
        }
        self.total_bytes += n;
        self.unwritten = true;
        Ok(())
    }

    /// Hand buffered bytes to the operating system.
    fn write_out(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            if self.unwritten {
                w.flush()?;
                self.unwritten = false;
                self.unsynced = true;
            }
        }
        Ok(())
    }

    fn segment_of(&self, seq: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.first_seq <= seq);
        i.checked_sub(1)
    }

    /// Delete segments from the front once everything in them is settled.
    fn collect_garbage(&mut self) {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.live == 0) {
            if self
                .cursor
                .as_ref()
                .is_some_and(|c| self.segments.front().is_some_and(|s| s.id == c.seg))
            {
                break;
            }
            let Some(s) = self.segments.pop_front() else {
                break;
            };
            match fs::remove_file(segment_path(&self.dir, s.id)) {
                Ok(()) => self.total_bytes -= s.bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.total_bytes -= s.bytes,
                Err(e) => {
                    self.note_failure("removing a drained segment", &e);
                    self.segments.push_front(s);
                    break;
                }
            }
        }
        self.counters
            .spool_bytes
            .store(self.total_bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Read back up to `n` cold events into memory, oldest first.
    fn read_cold(&mut self, n: usize) -> Vec<u64> {
        let mut loaded = Vec::new();
        if self.cold == 0 || n == 0 {
            return loaded;
        }
        if let Err(e) = self.write_out() {
            self.note_failure("writing", &e);
            return loaded;
        }
        while loaded.len() < n && self.cold > 0 {
            let Some(mut cur) = self.cursor.take() else {
                break;
            };
            // Take the whole records already read.
            let mut pos = 0;
            while pos < cur.buf.len() && loaded.len() < n {
                match parse(&cur.buf[pos..]) {
                    Parsed::Record {
                        kind,
                        seq,
                        payload,
                        size,
                    } => {
                        pos += size;
                        cur.skipping = false;
                        if kind != KIND_EVENT
                            || seq < self.cold_floor
                            || self.settled_at_start.contains(&seq)
                        {
                            continue;
                        }
                        self.cold_floor = seq + 1;
                        self.hot.insert(seq, Body::from(payload));
                        loaded.push(seq);
                        self.cold -= 1;
                        Counters::gauge(&self.counters.spooled, -1);
                        Counters::gauge(&self.counters.queued, 1);
                    }
                    Parsed::Incomplete => break,
                    Parsed::Corrupt => {
                        // Damaged after it was written: skip to the next place a
                        // record could start, counting the stretch once.
                        if !cur.skipping {
                            cur.skipping = true;
                            if self.scanned_upto.is_none_or(|s| cur.seg > s) {
                                Counters::add(&self.counters.spool_corrupt, 1);
                            }
                        }
                        // The same choice as `scan` among the whole records read;
                        // else wait at the first place a record may yet complete.
                        pos = resync(&cur.buf, pos + 1).unwrap_or_else(|| {
                            (pos + 1..cur.buf.len())
                                .find(|&p| cur.buf[p] == MAGIC[0] && parse(&cur.buf[p..]) != Parsed::Corrupt)
                                .unwrap_or(cur.buf.len())
                        });
                    }
                }
            }
            cur.offset += pos as u64;
            cur.buf.drain(..pos);
            if loaded.len() >= n || self.cold == 0 {
                self.cursor = Some(cur);
                break;
            }
            // Read more of this segment.
            let mut chunk = vec![0u8; READ_CHUNK.max(cur.buf.len())];
            let from = cur.offset + cur.buf.len() as u64;
            match File::open(segment_path(&self.dir, cur.seg))
                .and_then(|f| read_at_most(&f, &mut chunk, from))
            {
                Ok(0) => {
                    // The end of this segment: what is left there is a torn tail.
                    if !cur.buf.is_empty() && !cur.skipping && self.scanned_upto.is_none_or(|s| cur.seg > s) {
                        Counters::add(&self.counters.spool_corrupt, 1);
                    }
                    match self.segments.iter().find(|s| s.id > cur.seg) {
                        Some(next) => {
                            self.cursor = Some(Cursor {
                                seg: next.id,
                                offset: 0,
                                buf: Vec::new(),
                                skipping: false,
                            })
                        }
                        None => {
                            self.lose_unreadable();
                            break;
                        }
                    }
                }
                Ok(got) => {
                    cur.buf.extend_from_slice(&chunk[..got]);
                    self.cursor = Some(cur);
                }
                Err(e) => {
                    self.note_failure("reading back", &e);
                    self.cursor = Some(cur);
                    break;
                }
            }
        }
        if self.cold == 0 {
            self.cursor = None;
            self.settled_at_start = HashSet::new();
        }
        loaded
    }

    /// Cold events that cannot be read back any more (their bytes were
    /// damaged after they were written): counted as dropped, never silent.
    fn lose_unreadable(&mut self) {
        if self.cold > 0 {
            self.pending_logs.push((
                log::Level::Error,
                format!("{} events in the spool in {} could not be read back (damaged on disk); counted in dropped_spool", self.cold, self.dir.display()),
            ));
            Counters::gauge(&self.counters.spooled, -(self.cold as i64));
            Counters::add(&self.counters.dropped_spool, self.cold);
            self.cold = 0;
        }
        self.cursor = None;
    }
}

/// The segment ids in a slot directory, oldest first.
fn segment_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_prefix("seg-")?.strip_suffix(".log")?, 16).ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

impl SpoolStore {
    /// Take over what other slots left whose owner is gone (a fleet restarted
    /// with fewer workers than before): their unsettled events are copied into
    /// this slot's log (renumbered after its own, in their order), synced, and
    /// only then deleted there. A crash in between sends some twice, which
    /// Intercom's de-duplication absorbs. A slot whose lock is held is live
    /// and left alone.
    fn adopt_orphans(&mut self) {
        let Some(root) = self.dir.parent().map(Path::to_path_buf) else { return };
        let Ok(entries) = fs::read_dir(&root) else { return };
        let mut slots: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p != &self.dir
                    && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.len() > 1 && n.starts_with('w') && n[1..].bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        slots.sort();
        for slot in slots {
            let Ok(ids) = segment_ids(&slot) else { continue };
            if ids.is_empty() {
                continue;
            }
            let Ok(Some(_lock)) = SlotLock::take(&slot.join("lock")) else { continue };
            // Which of its events settled (settles may come in later segments).
            let mut settled = HashSet::new();
            let mut corrupt = 0u64;
            for id in &ids {
                if let Ok(bytes) = fs::read(segment_path(&slot, *id)) {
                    let end = scan(&bytes, true, |kind, _, payload, _| {
                        if kind == KIND_SETTLE {
                            for c in payload.chunks_exact(8) {
                                settled.insert(u64::from_le_bytes(c.try_into().expect("8 bytes")));
                            }
                        }
                    });
                    corrupt += u64::from(end.corrupt + u32::from(end.torn));
                }
            }
            let first = self.next_seq;
            let mut failed = false;
            for id in &ids {
                let Ok(bytes) = fs::read(segment_path(&slot, *id)) else { continue };
                let mut pending = Vec::new();
                scan(&bytes, true, |kind, seq, payload, _| {
                    if kind == KIND_EVENT && !settled.contains(&seq) {
                        pending.push(payload.to_vec());
                    }
                });
                for body in pending {
                    if let Err(e) = self.write_record(KIND_EVENT, self.next_seq, &body) {
                        self.note_failure("adopting another slot's events", &e);
                        failed = true;
                        break;
                    }
                    self.next_seq += 1;
                }
                if failed {
                    break;
                }
            }
            let adopted = self.next_seq - first;
            let synced = self.write_out().and_then(|()| self.writer.as_ref().map_or(Ok(()), |w| w.get_ref().sync_data()));
            if failed || synced.is_err() {
                // The copies may be incomplete: keep the other slot's files
                // (its events are sent twice at worst, never lost).
                if let Err(e) = synced {
                    self.note_failure("syncing adopted events", &e);
                }
            } else {
                for id in &ids {
                    let _ = fs::remove_file(segment_path(&slot, *id));
                }
            }
            if adopted > 0 {
                if self.cold == 0 {
                    let seg = self.segments.iter().find(|s| s.first_seq <= first && s.live > 0).or(self.segments.back()).map_or(0, |s| s.id);
                    self.cursor = Some(Cursor { seg, offset: 0, buf: Vec::new(), skipping: false });
                    self.cold_floor = first;
                }
                self.cold += adopted;
                Counters::add(&self.counters.recovered, adopted);
                Counters::gauge(&self.counters.spooled, adopted as i64);
                self.pending_logs.push((
                    log::Level::Info,
                    format!("took over {adopted} undelivered events from {}, whose tracker is gone", slot.display()),
                ));
            }
            if corrupt > 0 {
                Counters::add(&self.counters.spool_corrupt, corrupt);
            }
            self.counters.spool_bytes.store(self.total_bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Drop for SpoolStore {
    /// The slot is free for the next tracker as soon as this one has stopped
    /// (the tracker object may live on, closed).
    fn drop(&mut self) {
        let _ = self.write_out();
        self.lock.release();
    }
}

fn read_at_most(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn make_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

impl EventStore for SpoolStore {
    fn append(&mut self, body: Vec<u8>) -> Result<Appended, Vec<u8>> {
        let size = (HEADER + body.len()) as u64;
        if self.total_bytes + size > self.max_bytes {
            return Err(body);
        }
        let seq = self.next_seq;
        let hot = self.cold == 0 && self.hot.len() < self.window;
        if !hot && self.cold == 0 {
            // The first cold event: reading back starts at its record.
            let (seg, offset) = match self.segments.back() {
                Some(s) if s.bytes < SEGMENT_BYTES && self.writer.is_some() => (s.id, s.bytes),
                _ => (self.next_seg, 0),
            };
            self.cursor = Some(Cursor {
                seg,
                offset,
                buf: Vec::new(),
                skipping: false,
            });
            self.cold_floor = seq;
        }
        if let Err(e) = self.write_record(KIND_EVENT, seq, &body) {
            // Not on disk: kept in memory so it is still delivered while the
            // process lives (and the log says why).
            self.note_failure("appending", &e);
            if !hot && self.cold == 0 {
                self.cursor = None;
            }
            self.next_seq += 1;
            self.hot.insert(seq, Body::from(body));
            return Ok(Appended { seq, hot: true });
        }
        self.note_ok();
        self.next_seq += 1;
        self.counters
            .spool_bytes
            .store(self.total_bytes, std::sync::atomic::Ordering::Relaxed);
        if hot {
            self.hot.insert(seq, Body::from(body));
        } else {
            self.cold += 1;
            Counters::gauge(&self.counters.queued, -1);
            Counters::gauge(&self.counters.spooled, 1);
        }
        Ok(Appended { seq, hot })
    }

    fn get(&self, seq: u64) -> Option<Body> {
        self.hot.get(&seq).cloned()
    }

    fn settle(&mut self, seq: u64) {
        if self.hot.remove(&seq).is_none() {
            return;
        }
        if let Some(i) = self.segment_of(seq) {
            if let Some(s) = self.segments.get_mut(i) {
                s.live = s.live.saturating_sub(1);
            }
        }
        self.settles.push(seq);
    }

    fn oldest(&self) -> Option<u64> {
        let hot = self.hot.keys().next().copied();
        let cold = (self.cold > 0).then_some(self.cold_floor);
        hot.into_iter().chain(cold).min()
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn len(&self) -> usize {
        self.hot.len() + self.cold as usize
    }

    fn cold(&self) -> u64 {
        self.cold
    }

    fn window(&self) -> usize {
        self.window
    }

    fn load(&mut self, n: usize) -> Vec<u64> {
        self.read_cold(n)
    }

    fn durable(&self) -> bool {
        true
    }

    fn recover(&mut self) {
        let ids = match segment_ids(&self.dir) {
            Ok(ids) => ids,
            Err(e) => {
                self.note_failure("listing the slot", &e);
                return;
            }
        };
        // First pass: which events each segment holds and which settled.
        struct Seen {
            id: u64,
            bytes: u64,
            seqs: Vec<u64>,
        }
        let mut seen = Vec::new();
        let mut settled = HashSet::new();
        let (mut corrupt, mut torn) = (0u64, 0u64);
        for id in &ids {
            let bytes = match fs::read(segment_path(&self.dir, *id)) {
                Ok(b) => b,
                Err(e) => {
                    self.note_failure("reading a segment", &e);
                    continue;
                }
            };
            let mut seqs = Vec::new();
            let end = scan(&bytes, true, |kind, seq, payload, _| {
                if kind == KIND_EVENT {
                    seqs.push(seq);
                } else {
                    for c in payload.chunks_exact(8) {
                        settled.insert(u64::from_le_bytes(c.try_into().expect("8 bytes")));
                    }
                }
            });
            corrupt += u64::from(end.corrupt);
            torn += u64::from(end.torn);
            seen.push(Seen {
                id: *id,
                bytes: bytes.len() as u64,
                seqs,
            });
        }
        let mut max_seq = None::<u64>;
        let mut pending = 0u64;
        for s in &seen {
            let live = s.seqs.iter().filter(|q| !settled.contains(q)).count() as u64;
            let first = s
                .seqs
                .first()
                .copied()
                .unwrap_or_else(|| max_seq.map_or(0, |m| m + 1));
            if let Some(m) = s.seqs.iter().max() {
                max_seq = Some(max_seq.map_or(*m, |x| x.max(*m)));
            }
            pending += live;
            self.total_bytes += s.bytes;
            self.segments.push_back(Segment {
                id: s.id,
                first_seq: first,
                live,
                bytes: s.bytes,
            });
        }
        self.next_seq = max_seq.map_or(0, |m| m + 1);
        self.next_seg = ids.last().map_or(0, |i| i + 1);
        self.scanned_upto = ids.last().copied();
        let oldest = self.segments.front().map_or(0, |s| s.first_seq);
        settled.retain(|q| *q >= oldest);
        self.settled_at_start = settled;
        if pending > 0 {
            if let Some(first) = self.segments.front() {
                self.cursor = Some(Cursor {
                    seg: first.id,
                    offset: 0,
                    buf: Vec::new(),
                    skipping: false,
                });
            }
            self.cold = pending;
            self.cold_floor = oldest;
            Counters::add(&self.counters.recovered, pending);
            Counters::gauge(&self.counters.spooled, pending as i64);
            self.pending_logs.push((
                log::Level::Info,
                format!(
                    "recovered {pending} undelivered events from the spool in {}",
                    self.dir.display()
                ),
            ));
        }
        if corrupt + torn > 0 {
            Counters::add(&self.counters.spool_corrupt, corrupt + torn);
            self.pending_logs.push((
                log::Level::Warn,
                format!(
                    "the spool in {} had {corrupt} corrupt stretches and {torn} torn records (a crash or power loss while writing); they were skipped",
                    self.dir.display()
                ),
            ));
        }
        // New events go to a new segment: old ones are never appended to.
        self.writer = None;
        self.adopt_orphans();
        self.collect_garbage();
    }

    fn commit(&mut self, now: Instant, sync: bool) -> Result<(), String> {
        if !self.settles.is_empty() {
            let mut payload = Vec::with_capacity(self.settles.len() * 8);
            for s in self.settles.drain(..) {
                payload.extend_from_slice(&s.to_le_bytes());
            }
            if let Err(e) = self.write_record(KIND_SETTLE, 0, &payload) {
                // Without the record the events are sent again after a restart,
                // which Intercom's de-duplication absorbs: nothing is lost.
                self.note_failure("marking events done", &e);
            }
        }
        let mut result = Ok(());
        if let Err(e) = self.write_out() {
            self.note_failure("writing", &e);
            result = Err(e.to_string());
        }
        if self.unsynced && (sync || now.duration_since(self.last_sync) >= self.sync_every) {
            if let Some(w) = self.writer.as_ref() {
                match w.get_ref().sync_data() {
                    Ok(()) => {
                        self.unsynced = false;
                        self.last_sync = now;
                    }
                    Err(e) => {
                        self.note_failure("syncing to disk", &e);
                        result = Err(e.to_string());
                    }
                }
            }
        }
        if result.is_ok() {
            self.note_ok();
        }
        // A drained log gets a fresh segment so the old one can go.
        if self
            .segments
            .back()
            .is_some_and(|s| s.live == 0 && s.bytes >= SEGMENT_BYTES)
            && self.cold == 0
        {
            // The next record opens a new segment; this one is deleted as garbage.
            self.writer = None;
        }
        self.collect_garbage();
        result
    }

    fn next_commit(&self) -> Option<Instant> {
        (self.unsynced || self.unwritten).then(|| self.last_sync + self.sync_every)
    }

    fn take_logs(&mut self) -> Vec<(log::Level, String)> {
        std::mem::take(&mut self.pending_logs)
    }

    fn leave(&mut self) -> u64 {
        // Everything unsettled stays on disk for the next tracker on this directory.
        let left = self.hot.len() as u64 + self.cold;
        Counters::gauge(&self.counters.spooled, -(self.cold as i64));
        self.hot.clear();
        self.cold = 0;
        self.cursor = None;
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn temp_root(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("trackcore-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn open(root: &Path, window: usize) -> (SpoolStore, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let mut s =
            SpoolStore::open(root, window, 1 << 30, Duration::ZERO, counters.clone()).unwrap();
        s.recover();
        (s, counters)
    }

    fn body(i: u64) -> Vec<u8> {
        format!("{{\"event_name\":\"e\",\"user_id\":\"u{i}\",\"created_at\":{i}}}").into_bytes()
    }

    /// What `track()` does before the store sees an event.
    fn append(s: &mut SpoolStore, c: &Counters, i: u64) -> Appended {
        Counters::gauge(&c.queued, 1);
        s.append(body(i)).unwrap()
    }

    fn drain(s: &mut SpoolStore) -> Vec<u64> {
        let mut all = Vec::new();
        loop {
            let got = s.load(3);
            if got.is_empty() {
                return all;
            }
            all.extend(got);
        }
    }

    #[test]
    fn a_new_store_on_the_same_directory_gets_back_what_was_not_settled_in_order() {
        let root = temp_root("recover");
        {
            let (mut s, c) = open(&root, 4);
            let seqs: Vec<u64> = (0..10)
                .map(|i| append(&mut s, &c, i))
                .map(|a| a.seq)
                .collect();
            assert_eq!(seqs, (0..10).collect::<Vec<_>>());
            assert_eq!(
                s.cold(),
                6,
                "beyond the window of 4 events wait on disk only"
            );
            assert_eq!(c.spooled.load(Relaxed), 6);
            s.settle(0);
            s.settle(2);
            s.commit(Instant::now(), true).unwrap();
        }
        let (mut s, c) = open(&root, 4);
        assert_eq!(c.recovered.load(Relaxed), 8);
        assert_eq!(s.cold(), 8);
        let back = drain(&mut s);
        assert_eq!(back, vec![1, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(
            &*s.get(5).unwrap(),
            body(5).as_slice(),
            "bodies come back byte for byte"
        );
        assert_eq!(
            s.append(body(99)).unwrap().seq,
            10,
            "numbering continues after what was recovered"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn cold_events_come_back_in_order_while_new_ones_keep_arriving() {
        let root = temp_root("order");
        let (mut s, c) = open(&root, 2);
        let mut seen = Vec::new();
        let mut next = 0;
        for round in 0..20 {
            for _ in 0..(round % 4) {
                append(&mut s, &c, next);
                next += 1;
            }
            s.commit(Instant::now(), false).unwrap();
            let hot: Vec<u64> = s.hot.keys().copied().collect();
            for q in hot {
                seen.push(q);
                s.settle(q);
            }
            s.load(2);
        }
        loop {
            let hot: Vec<u64> = s.hot.keys().copied().collect();
            if hot.is_empty() && s.load(2).is_empty() {
                break;
            }
            for q in hot {
                seen.push(q);
                s.settle(q);
            }
        }
        assert_eq!(
            seen,
            (0..next).collect::<Vec<_>>(),
            "every event once, oldest first"
        );
        assert_eq!(c.spooled.load(Relaxed), 0);
        fs::remove_dir_all(&root).unwrap();
    }

    fn only_segment(root: &Path) -> PathBuf {
        let slot = root.join("w0");
        let mut segs: Vec<PathBuf> = fs::read_dir(&slot)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        assert_eq!(segs.len(), 1);
        segs.pop().unwrap()
    }

    #[test]
    fn a_torn_tail_and_a_corrupt_record_are_skipped_and_counted() {
        let root = temp_root("torn");
        {
            let (mut s, c) = open(&root, 100);
            for i in 0..5 {
                append(&mut s, &c, i);
            }
            s.commit(Instant::now(), true).unwrap();
        }
        let seg = only_segment(&root);
        let mut bytes = fs::read(&seg).unwrap();
        let one = HEADER + body(0).len();
        bytes[one + HEADER + 3] ^= 0x55; // a flipped bit in the second event's body
        bytes.truncate(bytes.len() - 7); // the last record torn
        fs::write(&seg, &bytes).unwrap();
        let (mut s, c) = open(&root, 100);
        assert_eq!(
            c.spool_corrupt.load(Relaxed),
            2,
            "one corrupt record, one torn tail"
        );
        assert_eq!(drain(&mut s), vec![0, 2, 3]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_second_live_store_takes_its_own_slot_and_files_are_owner_only() {
        let root = temp_root("slots");
        let (mut a, ca) = open(&root, 10);
        let (b, _) = open(&root, 10);
        assert_eq!(a.dir, root.join("w0"));
        assert_eq!(b.dir, root.join("w1"));
        append(&mut a, &ca, 1);
        a.commit(Instant::now(), true).unwrap();
        for p in [root.clone(), root.join("w0")] {
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o700,
                "{}",
                p.display()
            );
        }
        for e in fs::read_dir(root.join("w0")).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                p.display()
            );
        }
        drop(a);
        let (c, _) = open(&root, 10);
        assert_eq!(
            c.dir,
            root.join("w0"),
            "a slot is free again once its store is gone"
        );
        drop((b, c));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_slot_whose_tracker_is_gone_is_taken_over_by_the_next_one() {
        let root = temp_root("adopt");
        {
            let (mut a, ca) = open(&root, 100);
            let (mut b, cb) = open(&root, 100);
            for i in 0..3 {
                append(&mut a, &ca, i);
            }
            for i in 10..13 {
                append(&mut b, &cb, i);
            }
            b.settle(1);
            a.commit(Instant::now(), true).unwrap();
            b.commit(Instant::now(), true).unwrap();
            // A third, live slot is left alone.
            let (mut live, cl) = open(&root, 100);
            append(&mut live, &cl, 99);
            live.commit(Instant::now(), true).unwrap();
            drop((a, b));
            let (mut c, cc) = open(&root, 100);
            assert_eq!(c.dir, root.join("w0"));
            assert_eq!(cc.recovered.load(Relaxed), 5, "3 of its own slot, 2 adopted from w1");
            let back = drain(&mut c);
            let bodies: Vec<Vec<u8>> = back.iter().map(|q| c.get(*q).unwrap().to_vec()).collect();
            assert_eq!(bodies, vec![body(0), body(1), body(2), body(10), body(12)]);
            assert!(segment_ids(&root.join("w1")).unwrap().is_empty(), "the adopted slot's files are gone");
            assert_eq!(segment_ids(&root.join("w2")).unwrap().len(), 1, "a live slot is never touched");
            drop(live);
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn drained_segments_are_deleted_and_a_full_spool_refuses_new_events() {
        let root = temp_root("gc");
        let counters = Arc::new(Counters::default());
        let mut s = SpoolStore::open(
            &root,
            1 << 20,
            3 * SEGMENT_BYTES,
            Duration::ZERO,
            counters.clone(),
        )
        .unwrap();
        s.recover();
        let big = vec![b'x'; 100 << 10];
        let mut seqs = Vec::new();
        for _ in 0..50 {
            seqs.push(s.append(big.clone()).unwrap().seq);
        }
        s.commit(Instant::now(), false).unwrap();
        assert!(s.segments.len() >= 2);
        let before = counters.spool_bytes.load(Relaxed);
        for q in &seqs {
            s.settle(*q);
        }
        s.commit(Instant::now(), false).unwrap();
        s.append(big.clone()).unwrap();
        s.commit(Instant::now(), false).unwrap();
        assert!(
            counters.spool_bytes.load(Relaxed) < before / 2,
            "drained segments were deleted"
        );
        let mut refused = 0;
        for _ in 0..150 {
            if s.append(big.clone()).is_err() {
                refused += 1;
            }
        }
        assert!(refused > 0 && s.total_bytes <= 3 * SEGMENT_BYTES);
        fs::remove_dir_all(&root).unwrap();
    }
}
