//! Arrow builders for every table: the decoder appends into them, the batcher cuts them.
//!
//! Each table's builder holds one Arrow builder per column in schema order. `ts` is not
//! built per event: `finish` derives it from `ktime_ns` with one boot-to-wall offset for
//! the whole batch.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::types::{ArrowPrimitiveType, Int32Type, Int64Type};
use arrow_array::{ArrayRef, Int64Array, PrimitiveArray, RecordBatch, TimestampMicrosecondArray};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field};
use capture_schemas::Table;

/// Builder of a `LIST<VARCHAR>` column with non-null items, as the schemas declare it.
pub fn str_list_builder(rows: usize, items: usize, bytes: usize) -> ListBuilder<StringBuilder> {
    ListBuilder::with_capacity(StringBuilder::with_capacity(items, bytes), rows).with_field(Arc::new(Field::new(
        "item",
        DataType::Utf8,
        false,
    )))
}

/// Converts boot-clock nanoseconds to wall-clock microseconds with one offset.
pub fn ts_from_ktime(ktime: &Int64Array, offset_ns: i64) -> TimestampMicrosecondArray {
    let micros: Vec<i64> = ktime.values().iter().map(|k| k.saturating_add(offset_ns).div_euclid(1000)).collect();
    TimestampMicrosecondArray::from(micros).with_timezone("UTC")
}

/// A non-null primitive column: a plain `Vec`, no validity bitmap to maintain per value.
pub struct Values<T: ArrowPrimitiveType> {
    v: Vec<T::Native>,
}

impl<T: ArrowPrimitiveType> Values<T> {
    pub fn with_capacity(cap: usize) -> Self {
        Values { v: Vec::with_capacity(cap) }
    }

    #[inline]
    pub fn append_value(&mut self, x: T::Native) {
        self.v.push(x);
    }

    pub fn len(&self) -> usize {
        self.v.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    /// The values as an array; the column starts again with the same capacity.
    pub fn finish(&mut self) -> PrimitiveArray<T> {
        let cap = self.v.capacity();
        let v = std::mem::replace(&mut self.v, Vec::with_capacity(cap));
        PrimitiveArray::new(ScalarBuffer::from(v), None)
    }
}

pub type I64s = Values<Int64Type>;
pub type I32s = Values<Int32Type>;

/// The columns every event table starts with (`ts` is derived at finish).
pub struct Common {
    pub ktime_ns: I64s,
    pub pid: I32s,
    pub tid: I32s,
    pub ppid: I32s,
    pub uid: I64s,
    pub gid: I64s,
    pub comm: StringBuilder,
    pub exec_id: I64s,
    pub cgroup_id: I64s,
    cap: usize,
}

impl Common {
    fn new(cap: usize) -> Common {
        Common {
            ktime_ns: I64s::with_capacity(cap),
            pid: I32s::with_capacity(cap),
            tid: I32s::with_capacity(cap),
            ppid: I32s::with_capacity(cap),
            uid: I64s::with_capacity(cap),
            gid: I64s::with_capacity(cap),
            comm: StringBuilder::with_capacity(cap, cap * 8),
            exec_id: I64s::with_capacity(cap),
            cgroup_id: I64s::with_capacity(cap),
            cap,
        }
    }

    fn len(&self) -> usize {
        self.ktime_ns.len()
    }

    fn finish(&mut self, offset_ns: i64) -> Vec<ArrayRef> {
        let ktime = self.ktime_ns.finish();
        let ts = ts_from_ktime(&ktime, offset_ns);
        vec![
            Arc::new(ts),
            Arc::new(ktime),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
            Arc::new(self.ppid.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.gid.finish()),
            Arc::new(std::mem::replace(&mut self.comm, StringBuilder::with_capacity(self.cap, self.cap * 8)).finish()),
            Arc::new(self.exec_id.finish()),
            Arc::new(self.cgroup_id.finish()),
        ]
    }
}

/// Declares a table's builder: the common columns, then its own in schema order.
macro_rules! table_builder {
    ($name:ident, $table:expr, { $( $field:ident : $bty:ty = |$cap:ident| $ctor:expr ),* $(,)? }) => {
        pub struct $name {
            pub common: Common,
            $( pub $field: $bty, )*
            cap: usize,
        }

        impl $name {
            pub fn new(cap: usize) -> Self {
                Self { common: Common::new(cap), $( $field: { let $cap = cap; $ctor }, )* cap }
            }

            pub fn len(&self) -> usize {
                self.common.len()
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Takes the rows built so far as one batch and leaves the builder empty.
            pub fn finish(&mut self, offset_ns: i64) -> RecordBatch {
                let mut cols = self.common.finish(offset_ns);
                // Fresh builders of the same capacity: the next batch grows no buffers.
                $( cols.push(Arc::new(std::mem::replace(&mut self.$field, { let $cap = self.cap; $ctor }).finish()) as ArrayRef); )*
                // Every decode appends one value to every column, in schema order; a
                // mismatch is a bug in this file, which the round-trip tests catch.
                RecordBatch::try_new($table.schema(), cols).expect(concat!(stringify!($name), " matches its schema"))
            }
        }
    };
}

table_builder!(ExecBuilder, Table::Exec, {
    parent_exec_id: I64s = |c| I64s::with_capacity(c),
    start_ktime_ns: I64s = |c| I64s::with_capacity(c),
    euid: I64s = |c| I64s::with_capacity(c),
    loginuid: Int64Builder = |c| Int64Builder::with_capacity(c),
    path: StringBuilder = |c| StringBuilder::with_capacity(c, c * 24),
    argv: ListBuilder<StringBuilder> = |c| str_list_builder(c, c * 4, c * 64),
    envp: ListBuilder<StringBuilder> = |c| str_list_builder(c, c * 16, c * 512),
    argc: I32s = |c| I32s::with_capacity(c),
    envc: I32s = |c| I32s::with_capacity(c),
    argv_truncated: BooleanBuilder = |c| BooleanBuilder::with_capacity(c),
    envp_truncated: BooleanBuilder = |c| BooleanBuilder::with_capacity(c),
    tty: StringBuilder = |c| StringBuilder::with_capacity(c, c * 4),
    pidns: I64s = |c| I64s::with_capacity(c),
    mntns: I64s = |c| I64s::with_capacity(c),
    netns: I64s = |c| I64s::with_capacity(c),
    from_procfs: BooleanBuilder = |c| BooleanBuilder::with_capacity(c),
});

table_builder!(ExitBuilder, Table::Exit, {
    exit_code: I32s = |c| I32s::with_capacity(c),
    signal: I32s = |c| I32s::with_capacity(c),
    core_dumped: BooleanBuilder = |c| BooleanBuilder::with_capacity(c),
    lifetime_ns: I64s = |c| I64s::with_capacity(c),
});

table_builder!(FileBuilder, Table::File, {
    op: StringBuilder = |c| StringBuilder::with_capacity(c, c * 5),
    path: StringBuilder = |c| StringBuilder::with_capacity(c, c * 32),
    abs_path: StringBuilder = |c| StringBuilder::with_capacity(c, c * 32),
    path2: StringBuilder = |c| StringBuilder::with_capacity(c, 64),
    flags: I64s = |c| I64s::with_capacity(c),
    mode: I32s = |c| I32s::with_capacity(c),
    fd: I32s = |c| I32s::with_capacity(c),
    ret: I64s = |c| I64s::with_capacity(c),
    bytes_read: I64s = |c| I64s::with_capacity(c),
    bytes_written: I64s = |c| I64s::with_capacity(c),
    reads: I64s = |c| I64s::with_capacity(c),
    writes: I64s = |c| I64s::with_capacity(c),
    ino: I64s = |c| I64s::with_capacity(c),
    dev: I64s = |c| I64s::with_capacity(c),
});

table_builder!(NetBuilder, Table::Net, {
    family: StringBuilder = |c| StringBuilder::with_capacity(c, c * 4),
    proto: StringBuilder = |c| StringBuilder::with_capacity(c, c * 3),
    direction: StringBuilder = |c| StringBuilder::with_capacity(c, c * 3),
    saddr: StringBuilder = |c| StringBuilder::with_capacity(c, c * 12),
    sport: I32s = |c| I32s::with_capacity(c),
    daddr: StringBuilder = |c| StringBuilder::with_capacity(c, c * 12),
    dport: I32s = |c| I32s::with_capacity(c),
    bytes_sent: I64s = |c| I64s::with_capacity(c),
    bytes_recv: I64s = |c| I64s::with_capacity(c),
    start_ktime_ns: I64s = |c| I64s::with_capacity(c),
    duration_ns: I64s = |c| I64s::with_capacity(c),
});

table_builder!(DnsBuilder, Table::Dns, {
    family: StringBuilder = |c| StringBuilder::with_capacity(c, c * 4),
    proto: StringBuilder = |c| StringBuilder::with_capacity(c, c * 3),
    direction: StringBuilder = |c| StringBuilder::with_capacity(c, c * 3),
    saddr: StringBuilder = |c| StringBuilder::with_capacity(c, c * 12),
    sport: I32s = |c| I32s::with_capacity(c),
    daddr: StringBuilder = |c| StringBuilder::with_capacity(c, c * 12),
    dport: I32s = |c| I32s::with_capacity(c),
    txid: I32s = |c| I32s::with_capacity(c),
    is_response: BooleanBuilder = |c| BooleanBuilder::with_capacity(c),
    qname: StringBuilder = |c| StringBuilder::with_capacity(c, c * 24),
    qtype: StringBuilder = |c| StringBuilder::with_capacity(c, c * 4),
    rcode: StringBuilder = |c| StringBuilder::with_capacity(c, c * 7),
    answers: ListBuilder<StringBuilder> = |c| str_list_builder(c, c, c * 16),
    latency_ns: Int64Builder = |c| Int64Builder::with_capacity(c),
    msg_truncated: BooleanBuilder = |c| BooleanBuilder::with_capacity(c),
});

table_builder!(ModuleBuilder, Table::Module, {
    name: StringBuilder = |c| StringBuilder::with_capacity(c, c * 12),
    source: StringBuilder = |c| StringBuilder::with_capacity(c, c * 12),
    path: StringBuilder = |c| StringBuilder::with_capacity(c, c * 48),
    params: StringBuilder = |c| StringBuilder::with_capacity(c, 16),
    flags: I64s = |c| I64s::with_capacity(c),
});

/// One builder per event table.
pub struct Builders {
    pub exec: ExecBuilder,
    pub exit: ExitBuilder,
    pub file: FileBuilder,
    pub net: NetBuilder,
    pub dns: DnsBuilder,
    pub module: ModuleBuilder,
}

impl Builders {
    /// Builders sized for `cap` rows per table (they grow past it if needed).
    pub fn new(cap: usize) -> Builders {
        // Rare tables start small; their builders grow if a burst comes.
        let small = cap.min(1024);
        Builders {
            exec: ExecBuilder::new(small),
            exit: ExitBuilder::new(small),
            file: FileBuilder::new(cap),
            net: NetBuilder::new(cap),
            dns: DnsBuilder::new(small),
            module: ModuleBuilder::new(16),
        }
    }

    pub fn len(&self, table: Table) -> usize {
        match table {
            Table::Exec => self.exec.len(),
            Table::Exit => self.exit.len(),
            Table::File => self.file.len(),
            Table::Net => self.net.len(),
            Table::Dns => self.dns.len(),
            Table::Module => self.module.len(),
            Table::Stats => 0,
        }
    }

    /// Cuts the rows of `table` into a batch; `None` when it has none (or is `stats`).
    pub fn finish(&mut self, table: Table, offset_ns: i64) -> Option<RecordBatch> {
        if self.len(table) == 0 {
            return None;
        }
        Some(match table {
            Table::Exec => self.exec.finish(offset_ns),
            Table::Exit => self.exit.finish(offset_ns),
            Table::File => self.file.finish(offset_ns),
            Table::Net => self.net.finish(offset_ns),
            Table::Dns => self.dns.finish(offset_ns),
            Table::Module => self.module.finish(offset_ns),
            Table::Stats => return None,
        })
    }
}
