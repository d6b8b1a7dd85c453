//! The consumer side of a probe's BPF ring buffers, read here rather than through libbpf's
//! `ring_buffer__poll`: each probe writes one ring per CPU (`bpf/common.bpf.h`), and the
//! reader merges them back into the order the events happened.
//!
//! Why per-CPU rings: with one ring, every CPU takes the same lock and writes the same
//! producer position for every record. Two workers on two CPUs measured 2.79x against
//! 2.41x on the open storm (README, "Ring buffers").
//!
//! Why the merge: a process can move between CPUs, and the decoder needs a file's open
//! before its close (the close row takes the path of the open row). A pass takes the time
//! T first, then looks at the rings, and hands over only records stamped before T, oldest
//! first. A close is stamped after its open was committed (unless another thread closes
//! the fd in the moment between the open's return and its record: then the close row has
//! no path), so a close stamped before T has its open already in a ring, and older.
//! Records stamped after T wait for the next pass, and so does everything behind a record
//! still being written. Positions are given back to the kernel at the end of a pass, and
//! every eighth of a ring within a long one.
//!
//! The layout is the kernel's (`kernel/bpf/ringbuf.c`): one read-write page holding the
//! consumer position, then a read-only page holding the producer position, then the data
//! area mapped twice in a row, so a record that wraps around the end is still one slice.
//! Each record starts with an 8-byte header: a 32-bit length with a busy bit (reserved, not
//! yet committed) and a discard bit, then 4 bytes the consumer does not use.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use capture_schemas::abi::Hdr;

// The kernel's positions are `unsigned long`, read here as 64-bit atomics.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("the ring buffer reader supports 64-bit targets only");

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SZ: u64 = 8;
/// Where every record keeps its CLOCK_BOOTTIME stamp.
const KTIME_AT: usize = std::mem::offset_of!(Hdr, ktime_ns);
/// A record stamped this far past the pass time cannot have been written before the pass
/// looked at the rings: its stamp is bad, and it is handed over at once (the decoder judges
/// it) rather than holding its ring back for ever.
const FUTURE_NS: u64 = 1_000_000_000;

struct Mapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int, offset: usize) -> io::Result<Mapping> {
        // SAFETY: a new shared mapping of the map's fd; the kernel checks length, protection
        // and offset against the ring's layout and fails the call when they do not fit.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as libc::off_t)
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: NonNull::new(p).expect("mmap does not return NULL on success"), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped by `Mapping::new` with this length, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// One ring: where its positions and data are, and how far this pass may read.
pub struct Ring {
    consumer: *const AtomicU64,
    producer: *const AtomicU64,
    data: *const u8,
    mask: u64,
    /// Start of the next record to hand over.
    pos: u64,
    /// The producer position when this pass began: records past it wait.
    end: u64,
    /// The consumer position the kernel was last given.
    published: u64,
    _maps: Vec<Mapping>,
}

// SAFETY: the pointers are into mappings the Ring owns; only the reader thread uses it.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the ring buffer behind `fd`, whose data area is `size` bytes.
    pub fn map(fd: BorrowedFd<'_>, size: u32) -> io::Result<Ring> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let size = size as usize;
        if !size.is_power_of_two() || size < page {
            return Err(io::Error::other(format!("ring size {size} is not a power of two of at least a page")));
        }
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)?;
        let (c, p) = (consumer.ptr.as_ptr().cast::<AtomicU64>(), producer.ptr.as_ptr().cast::<AtomicU64>());
        // SAFETY: the data area starts one page into the producer mapping.
        let data = unsafe { producer.ptr.as_ptr().cast::<u8>().add(page) };
        // SAFETY: as `from_raw` requires: mapped as the kernel lays a ring out, kept in `_maps`.
        let mut ring = unsafe { Ring::from_raw(c, p, data, size as u64) };
        ring._maps = vec![consumer, producer];
        Ok(ring)
    }

    /// A ring over memory laid out as the kernel's.
    ///
    /// # Safety
    /// `consumer` and `producer` point to aligned u64 positions, `data` to `2 * size`
    /// readable bytes (the data area, then the same bytes again), all valid while the Ring
    /// lives; `size` is a power of two.
    pub unsafe fn from_raw(consumer: *const AtomicU64, producer: *const AtomicU64, data: *const u8, size: u64) -> Ring {
        // SAFETY: valid per the caller.
        let pos = unsafe { &*consumer }.load(Ordering::Acquire);
        Ring { consumer, producer, data, mask: size - 1, pos, end: pos, published: pos, _maps: Vec::new() }
    }

    /// Starts a pass: notes how far the kernel has written.
    fn begin(&mut self) {
        // SAFETY: valid for the Ring's life (see `from_raw`).
        self.end = unsafe { &*self.producer }.load(Ordering::Acquire);
    }

    /// The next record of this pass, skipping discarded ones.
    fn head(&mut self) -> Head<'_> {
        while self.pos < self.end {
            // SAFETY: pos & mask is inside the data area and 8-aligned (record starts are
            // rounded to 8); the kernel writes the length with release order at commit.
            let hdr = unsafe { &*self.data.add((self.pos & self.mask) as usize).cast::<AtomicU32>() };
            let len = hdr.load(Ordering::Acquire);
            if len & BUSY_BIT != 0 {
                return Head::Busy;
            }
            let body = u64::from(len & !(BUSY_BIT | DISCARD_BIT));
            if body > self.mask {
                // Not a length the kernel writes; nothing after it can be trusted.
                self.pos = self.end;
                return Head::End;
            }
            if len & DISCARD_BIT != 0 {
                self.pos += (body + HDR_SZ + 7) & !7;
                continue;
            }
            let start = ((self.pos & self.mask) + HDR_SZ) as usize;
            // SAFETY: the data area is there twice, so `body` (at most the ring's size)
            // bytes from `start` are readable; the kernel does not reuse them before the
            // consumer position passes them, which happens only after they are handed over.
            let rec = unsafe { std::slice::from_raw_parts(self.data.add(start), body as usize) };
            let ktime = rec.get(KTIME_AT..KTIME_AT + 8).map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap()));
            return Head::Record(ktime, rec);
        }
        Head::End
    }

    /// Moves past the record `head` returned.
    fn advance(&mut self) {
        // SAFETY: as in `head`; only called after `head` returned a record at `pos`.
        let len =
            unsafe { &*self.data.add((self.pos & self.mask) as usize).cast::<AtomicU32>() }.load(Ordering::Relaxed);
        self.pos += (u64::from(len & !(BUSY_BIT | DISCARD_BIT)) + HDR_SZ + 7) & !7;
    }

    /// Gives the space read so far back to the kernel.
    fn publish(&mut self) {
        if self.published != self.pos {
            // SAFETY: valid for the Ring's life; the kernel only reads this position.
            unsafe { &*self.consumer }.store(self.pos, Ordering::Release);
            self.published = self.pos;
        }
    }
}

/// What a ring has next in this pass.
enum Head<'a> {
    Record(u64, &'a [u8]),
    /// Reserved and not yet committed: the records behind it wait.
    Busy,
    End,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Records handed over.
    pub records: u64,
    /// The pass ended at a record still being written.
    pub busy: bool,
}

/// A probe's rings, read as one stream in time order.
pub struct RingSet {
    rings: Vec<Ring>,
    heads: BinaryHeap<Reverse<(u64, usize)>>,
}

impl RingSet {
    pub fn new(rings: Vec<Ring>) -> RingSet {
        let heads = BinaryHeap::with_capacity(rings.len());
        RingSet { rings, heads }
    }

    /// Hands `f` the committed records stamped before the pass time, oldest first (ties in
    /// ring order). `clock` gives the pass time and is read just before the rings are
    /// looked at (`|| u64::MAX` takes everything). A ring whose next record is newer waits
    /// for the next pass, with the records behind it.
    ///
    /// The pass ends at a record still being written: where CPUs share a ring, an open can
    /// sit behind it while its close, written later through another ring, is already
    /// there. A record is only busy while the kernel copies it in, so the wait is short.
    pub fn consume(&mut self, clock: impl FnOnce() -> u64, mut f: impl FnMut(&[u8])) -> Pass {
        let mut pass = Pass { records: 0, busy: false };
        self.heads.clear();
        let until = clock();
        for (i, r) in self.rings.iter_mut().enumerate() {
            r.begin();
            match r.head() {
                Head::Record(t, _) => self.heads.push(Reverse((t, i))),
                Head::Busy => pass.busy = true,
                Head::End => {}
            }
        }
        while !pass.busy {
            let Some(Reverse((t, i))) = self.heads.pop() else { break };
            if t >= until && t - until < FUTURE_NS {
                continue; // stamped after the pass began: this ring waits for the next pass
            }
            let ring = &mut self.rings[i];
            let Head::Record(_, rec) = ring.head() else { continue };
            f(rec);
            pass.records += 1;
            ring.advance();
            // A long pass (the writers may make `f` wait) does not hold the whole ring.
            if ring.pos - ring.published > ring.mask / 8 {
                ring.publish();
            }
            match ring.head() {
                Head::Record(t, _) => self.heads.push(Reverse((t, i))),
                Head::Busy => pass.busy = true,
                Head::End => {}
            }
        }
        for r in &mut self.rings {
            r.publish();
        }
        pass
    }
}

/// Sleeps until a ring is signalled (edge-triggered: records left for the next pass do
/// not wake it again) or the timeout passes.
pub struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    pub fn new<'a>(fds: impl IntoIterator<Item = BorrowedFd<'a>>) -> io::Result<Poller> {
        // SAFETY: a plain syscall; the result is checked and owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd nobody else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        for fd in fds {
            let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: 0 };
            // SAFETY: valid epoll fd, map fd and event.
            if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Poller { epoll })
    }

    /// Waits for a wake-up or `timeout`; a signal counts as a wake-up.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: valid epoll fd and a buffer of evs.len() events.
        let r = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), evs.as_mut_ptr(), evs.len() as i32, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring laid out in plain memory as the kernel lays it out; records are written
    /// without wrapping.
    struct FakeRing {
        consumer: Box<AtomicU64>,
        producer: Box<AtomicU64>,
        data: Vec<u64>,
    }

    impl FakeRing {
        fn new(size: usize) -> FakeRing {
            FakeRing {
                consumer: Box::new(AtomicU64::new(0)),
                producer: Box::new(AtomicU64::new(0)),
                data: vec![0; 2 * size / 8],
            }
        }

        /// Appends a record stamped `ktime` whose body after the header is `tag`.
        fn push(&mut self, ktime: u64, tag: u8, flags: u32) {
            let mut body = vec![0u8; std::mem::size_of::<Hdr>()];
            body[KTIME_AT..KTIME_AT + 8].copy_from_slice(&ktime.to_ne_bytes());
            body.push(tag);
            let at = self.producer.load(Ordering::Relaxed) as usize;
            let bytes: &mut [u8] = as_bytes_mut(&mut self.data);
            bytes[at..at + 4].copy_from_slice(&(body.len() as u32 | flags).to_ne_bytes());
            bytes[at + 8..at + 8 + body.len()].copy_from_slice(&body);
            let next = (at + 8 + body.len() + 7) & !7;
            self.producer.store(next as u64, Ordering::Release);
        }

        fn ring(&self) -> Ring {
            // SAFETY: the boxes and the vector outlive the Ring in each test; the data is
            // twice `size` long; records never wrap, so the second copy is not needed.
            unsafe {
                Ring::from_raw(
                    &*self.consumer,
                    &*self.producer,
                    self.data.as_ptr().cast(),
                    (self.data.len() * 4) as u64,
                )
            }
        }
    }

    fn as_bytes_mut(v: &mut [u64]) -> &mut [u8] {
        // SAFETY: u64 memory viewed as bytes, same length in bytes.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() * 8) }
    }

    fn tags(set: &mut RingSet, until: u64) -> Vec<u8> {
        let mut out = Vec::new();
        set.consume(|| until, |rec| out.push(*rec.last().unwrap()));
        out
    }

    #[test]
    fn rings_merge_in_time_order_up_to_the_pass_time() {
        let (mut a, mut b) = (FakeRing::new(4096), FakeRing::new(4096));
        a.push(10, 1, 0);
        a.push(40, 4, 0);
        b.push(20, 2, 0);
        b.push(30, 3, 0);
        b.push(50, 5, 0);
        let mut set = RingSet::new(vec![a.ring(), b.ring()]);
        assert_eq!(tags(&mut set, 45), [1, 2, 3, 4], "50 is after the pass time: it waits");
        assert_eq!(a.consumer.load(Ordering::Relaxed), a.producer.load(Ordering::Relaxed));
        assert!(b.consumer.load(Ordering::Relaxed) < b.producer.load(Ordering::Relaxed));
        a.push(60, 6, 0);
        assert_eq!(tags(&mut set, u64::MAX), [5, 6]);
        assert_eq!(b.consumer.load(Ordering::Relaxed), b.producer.load(Ordering::Relaxed));
        assert_eq!(tags(&mut set, u64::MAX), [] as [u8; 0]);
    }

    #[test]
    fn a_record_stamped_far_in_the_future_does_not_hold_its_ring_back() {
        let (mut a, mut b) = (FakeRing::new(4096), FakeRing::new(4096));
        a.push(u64::MAX - 1, 1, 0);
        a.push(10, 2, 0);
        b.push(20, 3, 0);
        b.push(1_000_000_050, 4, 0);
        let mut set = RingSet::new(vec![a.ring(), b.ring()]);
        assert_eq!(tags(&mut set, 100), [3, 1, 2], "4 is only just after the pass time: it waits");
        assert_eq!(tags(&mut set, u64::MAX), [4]);
    }

    #[test]
    fn discarded_records_are_skipped_and_a_busy_one_stops_its_ring() {
        let (mut a, mut b) = (FakeRing::new(4096), FakeRing::new(4096));
        a.push(10, 1, DISCARD_BIT);
        a.push(20, 2, 0);
        a.push(30, 3, BUSY_BIT);
        a.push(40, 4, 0);
        b.push(35, 5, 0);
        let mut set = RingSet::new(vec![a.ring(), b.ring()]);
        let mut out = Vec::new();
        let pass = set.consume(|| u64::MAX, |rec| out.push(*rec.last().unwrap()));
        assert_eq!((out, pass.busy), (vec![2], true), "the pass ends at the record still being written");
        // Commit it: the pass after goes on from there, in time order.
        let at = 2 * ((8 + std::mem::size_of::<Hdr>() + 1 + 7) & !7);
        as_bytes_mut(&mut a.data)[at + 3] &= !0x80;
        assert_eq!(tags(&mut set, u64::MAX), [3, 5, 4]);
    }
}
