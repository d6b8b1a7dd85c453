//! Arrow builders for every table: the decoder appends into them, the batcher cuts them.
//!
//! The builders are generated from the one declaration of the tables
//! (`capture_schemas::with_tables!`): one module per table (`builders::file::Builder`),
//! with a field per column of the type its Arrow type and nullability call for, and a
//! field per column group (`common`, `ep`). A column the decoder does not fill leaves the
//! batch invalid, which every decoder test catches; one it names but the declaration
//! lacks does not compile.
//!
//! `ts` is not built per event: [`Common`] derives it from `ktime_ns` with one
//! boot-to-wall offset for the whole batch. A finished column starts again sized for the
//! batch it just cut, so a steady stream grows no buffers.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BinaryBuilder, BooleanBuilder, ListBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{
    ArrowPrimitiveType, BinaryType, ByteArrayType, Int32Type, Int64Type, TimestampMicrosecondType, Utf8Type,
};
use arrow_array::{ArrayRef, GenericByteArray, Int64Array, PrimitiveArray, RecordBatch, TimestampMicrosecondArray};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
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

/// Builder of a `LIST<BLOB>` column with non-null items, as the schemas declare it.
pub fn bin_list_builder(rows: usize, items: usize, bytes: usize) -> ListBuilder<BinaryBuilder> {
    ListBuilder::with_capacity(BinaryBuilder::with_capacity(items, bytes), rows).with_field(Arc::new(Field::new(
        "item",
        DataType::Binary,
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

/// A `VARCHAR` ([`Strs`]) or `BLOB` ([`Bins`]) column, nullable or not: the values' bytes
/// and their end offsets in two `Vec`s, the null rows in [`NullRows`]. arrow's
/// `StringBuilder` spent about 41 instructions and a `memcpy` call a value on its buffers'
/// bookkeeping, 4.4 values a file event (callgrind, `bench_pipeline --tables file`). Nulls,
/// often one a row in a column nearly always null (`path2`, the `*_raw` bytes kept only
/// where text was not valid UTF-8), are counted and appended as one run when a value or
/// the cut comes.
pub struct ByteCol<T: ByteArrayType<Offset = i32>> {
    /// `offsets[i]..offsets[i + 1]` are value `i`'s bytes; `offsets[0]` is 0.
    offsets: Vec<i32>,
    bytes: Vec<u8>,
    nulls: NullRows,
    /// Nulls counted after the last value, not yet in `offsets` and `nulls`.
    pending: usize,
    kind: PhantomData<T>,
}

/// A `VARCHAR` column. Its bytes come only from `&str`s, whole: each value is UTF-8.
pub type Strs = ByteCol<Utf8Type>;
/// A `BLOB` column.
pub type Bins = ByteCol<BinaryType>;

impl<T: ByteArrayType<Offset = i32>> ByteCol<T> {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        ByteCol { offsets, bytes: Vec::with_capacity(bytes), nulls: NullRows::default(), pending: 0, kind: PhantomData }
    }

    /// Ends the current value: what was written into it, then `v`.
    #[inline(always)]
    fn push_value(&mut self, v: &[u8]) {
        self.write(v);
        // A batch is at most `batch_rows` values of at most a few KiB each: far from 2 GiB.
        let end = i32::try_from(self.bytes.len()).expect("a column's batch holds under 2 GiB of values");
        self.offsets.push(end);
    }

    /// Adds `v` to the current value.
    #[inline(always)]
    fn write(&mut self, v: &[u8]) {
        // The nulls counted so far come before the value this begins.
        if self.pending > 0 {
            self.flush_nulls();
        }
        put(&mut self.bytes, v);
    }

    #[inline]
    pub fn append_null(&mut self) {
        self.pending += 1;
    }

    #[cold]
    fn flush_nulls(&mut self) {
        let n = std::mem::take(&mut self.pending);
        self.nulls.push_run(self.offsets.len() - 1, n);
        let end = self.offsets[self.offsets.len() - 1];
        self.offsets.extend(std::iter::repeat_n(end, n));
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1 + self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as an array; the column starts again sized for as many rows and a
    /// quarter more bytes.
    pub fn finish(&mut self) -> GenericByteArray<T> {
        if self.pending > 0 {
            self.flush_nulls();
        }
        let (rows, bytes) = (self.len(), headroom(self.bytes.len()));
        let offsets = std::mem::replace(&mut self.offsets, Vec::with_capacity(rows + 1));
        self.offsets.push(0);
        let values = std::mem::replace(&mut self.bytes, Vec::with_capacity(bytes));
        let nulls = self.nulls.finish(rows);
        // SAFETY: the offsets start at 0, never decrease and end within `values`; `nulls`,
        // when there, has a bit for each of the `rows` values. A `Strs`'s values are UTF-8:
        // its bytes come only from whole `&str`s (`append_value`, `write_str`), and a value
        // ends only between two of them.
        unsafe {
            GenericByteArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                Buffer::from_vec(values),
                nulls,
            )
        }
    }
}

impl Strs {
    /// Ends the current value: what `write_str` wrote into it, then `s`.
    #[inline(always)]
    pub fn append_value(&mut self, s: impl AsRef<str>) {
        self.push_value(s.as_ref().as_bytes());
    }

    #[inline]
    pub fn append_option(&mut self, s: Option<impl AsRef<str>>) {
        match s {
            Some(s) => self.append_value(s),
            None => self.append_null(),
        }
    }
}

impl std::fmt::Write for Strs {
    #[inline]
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.write(s.as_bytes());
        Ok(())
    }
}

impl Bins {
    #[inline]
    pub fn append_value(&mut self, v: impl AsRef<[u8]>) {
        self.push_value(v.as_ref());
    }

    #[inline]
    pub fn append_option(&mut self, v: Option<impl AsRef<[u8]>>) {
        match v {
            Some(v) => self.append_value(v),
            None => self.append_null(),
        }
    }
}

/// Which rows of a column are null, as runs (first row, rows): the validity bitmap is made
/// at the cut. arrow's builders set a bit a row and grew the bitmap a byte at a time
/// (zeroed by a `memset` call): `file_id` took 60 instructions a row through them, where
/// [`OptValues::append_option`] takes about 25 (callgrind, 200,000 file records decoded).
#[derive(Default)]
pub struct NullRows(Vec<(u32, u32)>);

impl NullRows {
    /// `n` null rows from `row` (a batch's rows number far fewer than 2^32).
    #[inline]
    fn push_run(&mut self, row: usize, n: usize) {
        match self.0.last_mut() {
            Some((first, len)) if (*first + *len) as usize == row => *len += n as u32,
            _ => self.0.push((row as u32, n as u32)),
        }
    }

    /// The bitmap of `len` rows (`None`: no null); the runs start again empty.
    fn finish(&mut self, len: usize) -> Option<NullBuffer> {
        if self.0.is_empty() {
            return None;
        }
        let mut bits = arrow_buffer::BooleanBufferBuilder::new(len);
        for &(first, n) in &self.0 {
            bits.append_n(first as usize - bits.len(), true);
            bits.append_n(n as usize, false);
        }
        bits.append_n(len - bits.len(), true);
        self.0.clear();
        Some(NullBuffer::new(bits.finish()))
    }
}

/// A nullable primitive column: a [`Values`] column, a null in it a default value, and the
/// runs of null rows.
pub struct OptValues<T: ArrowPrimitiveType> {
    v: Values<T>,
    nulls: NullRows,
}

impl<T: ArrowPrimitiveType> OptValues<T> {
    #[inline]
    pub fn append_value(&mut self, x: T::Native) {
        self.v.append_value(x);
    }

    #[inline]
    pub fn append_null(&mut self) {
        self.nulls.push_run(self.v.len(), 1);
        self.v.append_value(T::Native::default());
    }

    #[inline]
    pub fn append_option(&mut self, x: Option<T::Native>) {
        match x {
            Some(x) => self.append_value(x),
            None => self.append_null(),
        }
    }

    pub fn len(&self) -> usize {
        self.v.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }
}

impl<T: ArrowPrimitiveType> Column for OptValues<T> {
    fn with_capacity(rows: usize) -> Self {
        OptValues { v: Values::with_capacity(rows), nulls: NullRows::default() }
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        let nulls = self.nulls.finish(self.v.len());
        let (_, values, _) = self.v.finish().into_parts();
        Arc::new(PrimitiveArray::<T>::new(values, nulls))
    }
}

/// `v.extend_from_slice(s)`, with the short copies most kernel strings need (up to 32
/// bytes: two overlapping loads and stores of 1, 4, 8 or 16 bytes) inline, where
/// `extend_from_slice` called `memcpy` for each.
#[inline(always)]
fn put(v: &mut Vec<u8>, s: &[u8]) {
    let (len, n) = (v.len(), s.len());
    v.reserve(n);
    let (src, dst) = (s.as_ptr(), v.spare_capacity_mut().as_mut_ptr().cast::<u8>());
    // SAFETY: `src` has `n` readable bytes and `dst` room for `n` (reserved above); each
    // pair of copies below reads and writes only within `0..n` of them: the first from 0,
    // the second ending at `n`, both of a width no more than `n`. They do not overlap:
    // `s` cannot borrow `v`'s spare capacity. The `n` bytes are then initialized.
    unsafe {
        if n > 32 {
            std::ptr::copy_nonoverlapping(src, dst, n);
        } else if n >= 16 {
            copy2::<u128>(src, dst, n);
        } else if n >= 8 {
            copy2::<u64>(src, dst, n);
        } else if n >= 4 {
            copy2::<u32>(src, dst, n);
        } else if n > 0 {
            *dst = *src;
            *dst.add(n / 2) = *src.add(n / 2);
            *dst.add(n - 1) = *src.add(n - 1);
        }
        v.set_len(len + n);
    }
}

/// Copies `n` bytes as the `T` at 0 and the `T` ending at `n` (they overlap when
/// `n < 2 * size_of::<T>()`).
///
/// # Safety
/// `size_of::<T>() <= n`, `src` readable and `dst` writable for `n` bytes.
#[inline(always)]
unsafe fn copy2<T: Copy>(src: *const u8, dst: *mut u8, n: usize) {
    let w = std::mem::size_of::<T>();
    // SAFETY: both ranges, `0..w` and `n - w..n`, are within the `n` bytes (the caller's
    // `w <= n`); unaligned reads and writes of a plain integer.
    unsafe {
        let (a, b) = (src.cast::<T>().read_unaligned(), src.add(n - w).cast::<T>().read_unaligned());
        dst.cast::<T>().write_unaligned(a);
        dst.add(n - w).cast::<T>().write_unaligned(b);
    }
}

pub type I64s = Values<Int64Type>;
pub type I32s = Values<Int32Type>;
/// A `TIMESTAMP (µs, UTC)` column appended value by value (the `stats` table's `ts`).
pub struct Timestamps(pub Values<TimestampMicrosecondType>);

impl Timestamps {
    #[inline]
    pub fn append_value(&mut self, micros: i64) {
        self.0.append_value(micros);
    }
}

/// Room for the next batch's variable-length data, sized by the last batch's: a quarter
/// more, as a full batch has as many rows as the last but not as many bytes. Sized exactly,
/// a values buffer that outgrew it was reallocated and copied (`perf`, `bench_pipeline
/// --tables file`: `realloc` about 4% of the pipeline's samples, 0.05% after).
fn headroom(n: usize) -> usize {
    n + n / 4
}

/// What every generated column field is: a builder that knows its length and cuts itself
/// into an array.
pub trait Column {
    fn with_capacity(rows: usize) -> Self;
    fn rows(&self) -> usize;
    /// The rows so far as an array; the builder starts again sized for as many.
    fn cut(&mut self) -> ArrayRef;
}

impl<T: ArrowPrimitiveType> Column for Values<T> {
    fn with_capacity(rows: usize) -> Self {
        Values::with_capacity(rows)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl Column for Timestamps {
    fn with_capacity(rows: usize) -> Self {
        Timestamps(Values::with_capacity(rows))
    }
    fn rows(&self) -> usize {
        self.0.len()
    }
    fn cut(&mut self) -> ArrayRef {
        Arc::new(self.0.finish().with_timezone("UTC"))
    }
}

impl Column for BooleanBuilder {
    fn with_capacity(rows: usize) -> Self {
        BooleanBuilder::with_capacity(rows)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        let rows = self.len();
        Arc::new(std::mem::replace(self, BooleanBuilder::with_capacity(rows)).finish())
    }
}

impl Column for Strs {
    fn with_capacity(rows: usize) -> Self {
        Strs::with_capacity(rows, rows * 16)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl Column for Bins {
    fn with_capacity(_rows: usize) -> Self {
        // Values are rare: no room kept for them.
        Bins::with_capacity(0, 0)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

/// Builder of a `LIST<BIGINT>` column with non-null items, as the schemas declare it.
pub fn i64_list_builder(rows: usize, items: usize) -> ListBuilder<PrimitiveBuilder<Int64Type>> {
    ListBuilder::with_capacity(PrimitiveBuilder::with_capacity(items), rows).with_field(Arc::new(Field::new(
        "item",
        DataType::Int64,
        false,
    )))
}

impl Column for ListBuilder<PrimitiveBuilder<Int64Type>> {
    fn with_capacity(rows: usize) -> Self {
        i64_list_builder(rows, rows)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        let (rows, items) = (self.len(), self.values_ref().len());
        Arc::new(std::mem::replace(self, i64_list_builder(rows, headroom(items))).finish())
    }
}

/// A non-null `BOOLEAN` column, nearly always false (`preexisting`, `mmap_write`,
/// `interim`, ...): a value is a count, a `true` also its row number, and the bitmap is
/// made at the cut; `BooleanBuilder` spent about 36 instructions a value.
#[derive(Default)]
pub struct Bools {
    len: usize,
    trues: Vec<u32>,
}

impl Bools {
    #[inline]
    pub fn append_value(&mut self, v: bool) {
        if v {
            self.trues.push(self.len as u32);
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Column for Bools {
    fn with_capacity(_rows: usize) -> Self {
        Bools::default()
    }
    fn rows(&self) -> usize {
        self.len
    }
    fn cut(&mut self) -> ArrayRef {
        let mut bits = arrow_buffer::MutableBuffer::from_len_zeroed(self.len.div_ceil(8));
        for &i in &self.trues {
            arrow_buffer::bit_util::set_bit(bits.as_slice_mut(), i as usize);
        }
        let values = arrow_buffer::BooleanBuffer::new(bits.into(), 0, self.len);
        self.len = 0;
        self.trues.clear();
        Arc::new(arrow_array::BooleanArray::new(values, None))
    }
}

impl Column for ListBuilder<BinaryBuilder> {
    fn with_capacity(rows: usize) -> Self {
        bin_list_builder(rows, 0, 0)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        let (rows, items, bytes) = (self.len(), self.values_ref().len(), self.values_ref().values_slice().len());
        Arc::new(std::mem::replace(self, bin_list_builder(rows, headroom(items), headroom(bytes))).finish())
    }
}

impl Column for ListBuilder<StringBuilder> {
    fn with_capacity(rows: usize) -> Self {
        str_list_builder(rows, rows * 4, rows * 64)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        let (rows, items, bytes) = (self.len(), self.values_ref().len(), self.values_ref().values_slice().len());
        Arc::new(std::mem::replace(self, str_list_builder(rows, headroom(items), headroom(bytes))).finish())
    }
}

/// A set of columns several tables share, as one builder.
pub trait ColumnGroup {
    fn with_capacity(rows: usize) -> Self;
    fn rows(&self) -> usize;
    /// Appends the group's arrays, in schema order, to `out`.
    fn cut_into(&mut self, offset_ns: i64, out: &mut Vec<ArrayRef>);
}

/// The columns every event table starts with (`ts` is derived at the cut).
pub struct Common {
    pub ktime_ns: I64s,
    pub pid: I32s,
    pub tid: I32s,
    pub ppid: I32s,
    pub uid: I64s,
    pub gid: I64s,
    pub comm: Strs,
    pub exec_id: I64s,
    pub cgroup_id: I64s,
    /// What the decoder made of the process of the row before (not a column).
    pub last: LastProc,
}

/// The process of a table's row before, as its record's header named it (pid, start time,
/// `comm` bytes), with its `comm` as text and its `exec_id`. The rows after the first of a
/// run from one process take both from here: no search for the NUL, no UTF-8 check, no
/// hash. Only a `comm` that was valid UTF-8 is kept.
#[derive(Default)]
pub struct LastProc {
    pub pid: u32,
    pub start_ns: u64,
    pub comm: [u8; 16],
    /// False (and the rest meaningless) until a process is kept.
    pub kept: bool,
    pub text: String,
    pub exec_id: i64,
}

impl ColumnGroup for Common {
    fn with_capacity(cap: usize) -> Common {
        Common {
            ktime_ns: Column::with_capacity(cap),
            pid: Column::with_capacity(cap),
            tid: Column::with_capacity(cap),
            ppid: Column::with_capacity(cap),
            uid: Column::with_capacity(cap),
            gid: Column::with_capacity(cap),
            comm: Strs::with_capacity(cap, cap * 8),
            exec_id: Column::with_capacity(cap),
            cgroup_id: Column::with_capacity(cap),
            last: LastProc { text: String::with_capacity(16), ..Default::default() },
        }
    }

    fn rows(&self) -> usize {
        self.ktime_ns.len()
    }

    fn cut_into(&mut self, offset_ns: i64, out: &mut Vec<ArrayRef>) {
        let ktime = self.ktime_ns.finish();
        out.push(Arc::new(ts_from_ktime(&ktime, offset_ns)));
        out.push(Arc::new(ktime));
        out.push(self.pid.cut());
        out.push(self.tid.cut());
        out.push(self.ppid.cut());
        out.push(self.uid.cut());
        out.push(self.gid.cut());
        out.push(self.comm.cut());
        out.push(self.exec_id.cut());
        out.push(self.cgroup_id.cut());
    }
}

/// The builder type of a column: `builder_ty!(I64)`, `builder_ty!(I64 null)`.
macro_rules! builder_ty {
    (Ts) => { Timestamps };
    (I32) => { I32s };
    (I32 null) => { OptValues<Int32Type> };
    (I64) => { I64s };
    (I64 null) => { OptValues<Int64Type> };
    (Bool) => { Bools };
    (Bool null) => { BooleanBuilder };
    (Str) => { Strs };
    (Str null) => { Strs };
    (StrList $($null:ident)?) => { ListBuilder<StringBuilder> };
    (I64List $($null:ident)?) => { ListBuilder<PrimitiveBuilder<Int64Type>> };
    (Bin $($null:ident)?) => { Bins };
    (BinList $($null:ident)?) => { ListBuilder<BinaryBuilder> };
}

/// The row count of a builder: that of its first column.
macro_rules! first_rows {
    ($first:expr $(, $rest:expr)*) => {
        Column::rows(&$first)
    };
}

/// This crate's expansion of `with_tables!`: a builder per group (but `Common`, written
/// above) and per table, and [`Builders`], one of each table.
macro_rules! define_builders {
    (
        groups {
            Common $COMMON:ident { $( $ccol:ident : $cty:ident $(| $cnull:ident)? => $cdesc:literal ),* $(,)? }
            $(
                $group:ident $GROUP:ident {
                    $( $gcol:ident : $gty:ident $(| $gnull:ident)? => $gdesc:literal ),* $(,)?
                }
            )*
        }
        tables { $(
            $field:ident : $Variant:ident = $idx:literal , probe $probe:expr , $about:literal
            [ $( $gfield:ident : $G:ident ),* ]
            { $( $col:ident : $ty:ident $(| $null:ident)? => $desc:literal ),* $(,)? }
        )* }
    ) => {
        $(
            #[doc = concat!("The `", stringify!($group), "` columns.")]
            pub struct $group {
                $( pub $gcol: builder_ty!($gty $($gnull)?), )*
            }

            impl ColumnGroup for $group {
                fn with_capacity(rows: usize) -> Self {
                    $group { $( $gcol: Column::with_capacity(rows), )* }
                }

                fn rows(&self) -> usize {
                    first_rows!($( self.$gcol ),*)
                }

                fn cut_into(&mut self, _offset_ns: i64, out: &mut Vec<ArrayRef>) {
                    $( out.push(self.$gcol.cut()); )*
                }
            }
        )*

        $(
            #[doc = concat!("The builder of the `", stringify!($field), "` table.")]
            pub mod $field {
                use super::*;

                pub struct Builder {
                    $( pub $gfield: $G, )*
                    $( pub $col: builder_ty!($ty $($null)?), )*
                }

                impl Builder {
                    pub fn with_capacity(rows: usize) -> Self {
                        Builder {
                            $( $gfield: ColumnGroup::with_capacity(rows), )*
                            $( $col: Column::with_capacity(rows), )*
                        }
                    }

                    pub fn len(&self) -> usize {
                        first_rows!($( self.$col ),*)
                    }

                    pub fn is_empty(&self) -> bool {
                        self.len() == 0
                    }

                    /// Takes the rows built so far as one batch and leaves the builder empty.
                    #[allow(unused_variables)] // offset_ns, in a table without groups
                    pub fn finish(&mut self, offset_ns: i64) -> RecordBatch {
                        let mut cols: Vec<ArrayRef> = Vec::with_capacity(Table::$Variant.schema().fields().len());
                        $( ColumnGroup::cut_into(&mut self.$gfield, offset_ns, &mut cols); )*
                        $( cols.push(self.$col.cut()); )*
                        // Every decode appends one value to every column; a mismatch is a
                        // bug in the decoder, which the round-trip tests catch.
                        RecordBatch::try_new(Table::$Variant.schema(), cols)
                            .expect(concat!("the ", stringify!($field), " builder matches its schema"))
                    }
                }
            }
        )*

        /// One builder per table.
        pub struct Builders {
            $( pub $field: $field::Builder, )*
        }

        impl Builders {
            /// Builders for about `cap` rows per table; each grows to its table's batch
            /// size once and keeps it.
            pub fn new(cap: usize) -> Builders {
                let first = cap.min(1024);
                Builders { $( $field: $field::Builder::with_capacity(first), )* }
            }

            pub fn len(&self, table: Table) -> usize {
                match table { $( Table::$Variant => self.$field.len(), )* }
            }

            /// Cuts the rows of `table` into a batch; `None` when it has none.
            pub fn finish(&mut self, table: Table, offset_ns: i64) -> Option<RecordBatch> {
                if self.len(table) == 0 {
                    return None;
                }
                Some(match table { $( Table::$Variant => self.$field.finish(offset_ns), )* })
            }
        }
    };
}

capture_schemas::with_tables!(define_builders);

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, BooleanArray, Int64Array, StringArray};
    use std::fmt::Write;

    #[test]
    fn strings_keep_the_order_of_nulls_and_values_however_they_are_appended() {
        let mut s: Strs = Column::with_capacity(4);
        s.append_null();
        s.append_null();
        s.append_value("a"); // the two counted nulls go first
        s.append_option(None::<&str>);
        // A value written in parts, as the decoder joins paths: the null before it first.
        write!(&mut s, "b/").unwrap();
        s.append_value("c");
        s.append_option(Some("d"));
        s.append_value("");
        // Every width of the short copies, and a long one.
        let long: String = (0..100).map(|i| char::from(b'a' + i % 26)).collect();
        for n in [1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 100] {
            s.append_value(&long[..n]);
        }
        s.append_null();
        assert_eq!(s.len(), 21);
        assert_eq!(Column::rows(&s), 21);
        let a = s.cut();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<Option<&str>> = a.iter().collect();
        let mut want = vec![None, None, Some("a"), None, Some("b/c"), Some("d"), Some("")];
        want.extend([1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 100].map(|n| Some(&long[..n])));
        want.push(None);
        assert_eq!(got, want);
        assert_eq!(a.null_count(), 4);
        // The column starts again empty, nothing counted.
        assert_eq!(s.len(), 0);
        s.append_value("x");
        let a = s.cut();
        assert_eq!((a.len(), a.null_count()), (1, 0), "a batch without nulls has no null buffer");
        assert!(a.nulls().is_none());
        s.append_null();
        let a = s.cut();
        assert_eq!((a.len(), a.null_count()), (1, 1));
    }

    #[test]
    fn bytes_and_nullable_primitives_and_all_null_cuts() {
        let mut b: Bins = Column::with_capacity(0);
        b.append_null();
        b.append_value(b"\xff\x00raw");
        b.append_option(None::<&[u8]>);
        let a = b.cut();
        let a = a.as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), [None, Some(&b"\xff\x00raw"[..]), None]);
        for _ in 0..5 {
            b.append_null();
        }
        let a = b.cut();
        assert_eq!((a.len(), a.null_count()), (5, 5));

        let mut s: OptValues<Int64Type> = Column::with_capacity(2);
        for _ in 0..3 {
            s.append_null();
        }
        let a = s.cut();
        assert_eq!((a.len(), a.null_count()), (3, 3));
        // Runs of nulls and values, to the end of a bitmap byte and past it.
        let want: Vec<Option<i64>> = (0..21).map(|i| (i % 5 < 2 || i == 20).then_some(i)).collect();
        for &v in &want {
            s.append_option(v);
        }
        let a = s.cut();
        let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), want);
        s.append_value(9);
        let a = s.cut();
        assert!(a.nulls().is_none());
    }

    #[test]
    fn bools_set_exactly_the_true_rows_and_start_again_empty() {
        let mut b = Bools::default();
        let want: Vec<bool> = (0..77).map(|i| i % 13 == 0 || i == 76).collect();
        for &v in &want {
            b.append_value(v);
        }
        assert_eq!(Column::rows(&b), 77);
        let a = b.cut();
        let a = a.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert_eq!(a.null_count(), 0);
        assert_eq!(a.iter().map(Option::unwrap).collect::<Vec<_>>(), want);
        assert!(b.is_empty());
        b.append_value(false);
        let a = b.cut();
        let a = a.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert_eq!((a.len(), a.value(0)), (1, false));
    }
}
