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

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BinaryBuilder, BooleanBuilder, ListBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{ArrowPrimitiveType, Int32Type, Int64Type, TimestampMicrosecondType};
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

impl<T: ArrowPrimitiveType> Column for PrimitiveBuilder<T> {
    fn with_capacity(rows: usize) -> Self {
        PrimitiveBuilder::with_capacity(rows)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        let rows = self.len();
        Arc::new(std::mem::replace(self, PrimitiveBuilder::with_capacity(rows)).finish())
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

impl Column for StringBuilder {
    fn with_capacity(rows: usize) -> Self {
        StringBuilder::with_capacity(rows, rows * 16)
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        let (rows, bytes) = (self.len(), self.values_slice().len());
        Arc::new(std::mem::replace(self, StringBuilder::with_capacity(rows, headroom(bytes))).finish())
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

/// A nullable column that is often null (`path2`, `closed_by`, `length`, the `*_raw`
/// bytes kept only where text was not valid UTF-8): a null is a count, appended as one run
/// when a value or the cut comes, where a null per row cost the builder an offset or a
/// value and a validity bit each (about 40 instructions).
///
/// Everything else goes to the builder `B` itself: the mutable borrow (`DerefMut`) first
/// appends the nulls counted so far, so values and nulls keep their order whichever way
/// they are appended; [`Sparse::len`] counts both.
#[derive(Default)]
pub struct Sparse<B> {
    b: B,
    nulls: usize,
}

/// A builder that appends a run of nulls at once.
pub trait NullRuns {
    fn append_null_run(&mut self, n: usize);
}

impl<T: ArrowPrimitiveType> NullRuns for PrimitiveBuilder<T> {
    fn append_null_run(&mut self, n: usize) {
        self.append_nulls(n);
    }
}

impl<T: arrow_array::types::ByteArrayType> NullRuns for arrow_array::builder::GenericByteBuilder<T> {
    fn append_null_run(&mut self, n: usize) {
        self.append_nulls(n);
    }
}

impl<B: NullRuns + ArrayBuilder> Sparse<B> {
    pub fn new(b: B) -> Self {
        Sparse { b, nulls: 0 }
    }

    #[inline]
    pub fn append_null(&mut self) {
        self.nulls += 1;
    }

    /// Rows so far, nulls not yet appended to the builder included.
    pub fn len(&self) -> usize {
        self.b.len() + self.nulls
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn flush(&mut self) {
        if self.nulls > 0 {
            self.b.append_null_run(std::mem::take(&mut self.nulls));
        }
    }
}

impl<B> std::ops::Deref for Sparse<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.b
    }
}

impl<B: NullRuns + ArrayBuilder> std::ops::DerefMut for Sparse<B> {
    #[inline]
    fn deref_mut(&mut self) -> &mut B {
        self.flush();
        &mut self.b
    }
}

impl<B: NullRuns + ArrayBuilder> Sparse<B> {
    /// `Some` appends through the builder, `None` counts.
    #[inline]
    pub fn append_option<V>(&mut self, v: Option<V>)
    where
        B: AppendValue<V>,
    {
        match v {
            Some(v) => (**self).append(v),
            None => self.append_null(),
        }
    }
}

/// `append_value` of each builder `Sparse` wraps, for [`Sparse::append_option`].
pub trait AppendValue<V> {
    fn append(&mut self, v: V);
}

impl<T: ArrowPrimitiveType> AppendValue<T::Native> for PrimitiveBuilder<T> {
    #[inline]
    fn append(&mut self, v: T::Native) {
        self.append_value(v);
    }
}

impl<V: AsRef<str>> AppendValue<V> for StringBuilder {
    #[inline]
    fn append(&mut self, v: V) {
        self.append_value(v);
    }
}

impl<V: AsRef<[u8]>> AppendValue<V> for BinaryBuilder {
    #[inline]
    fn append(&mut self, v: V) {
        self.append_value(v);
    }
}

impl<B: Column + NullRuns + ArrayBuilder> Column for Sparse<B> {
    fn with_capacity(rows: usize) -> Self {
        Sparse::new(B::with_capacity(rows))
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        self.flush();
        self.b.cut()
    }
}

/// A nullable `BLOB` column (the `*_raw` columns), nearly always null.
pub type SparseBin = Sparse<BinaryBuilder>;

impl Column for BinaryBuilder {
    fn with_capacity(_rows: usize) -> Self {
        // Values are rare: no room kept for them.
        BinaryBuilder::new()
    }
    fn rows(&self) -> usize {
        self.len()
    }
    fn cut(&mut self) -> ArrayRef {
        Arc::new(self.finish())
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
    pub comm: StringBuilder,
    pub exec_id: I64s,
    pub cgroup_id: I64s,
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
            comm: StringBuilder::with_capacity(cap, cap * 8),
            exec_id: Column::with_capacity(cap),
            cgroup_id: Column::with_capacity(cap),
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
    (I32 null) => { Sparse<PrimitiveBuilder<Int32Type>> };
    (I64) => { I64s };
    (I64 null) => { Sparse<PrimitiveBuilder<Int64Type>> };
    (Bool) => { Bools };
    (Bool null) => { BooleanBuilder };
    (Str) => { StringBuilder };
    (Str null) => { Sparse<StringBuilder> };
    (StrList $($null:ident)?) => { ListBuilder<StringBuilder> };
    (I64List $($null:ident)?) => { ListBuilder<PrimitiveBuilder<Int64Type>> };
    (Bin $($null:ident)?) => { SparseBin };
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
    fn sparse_keeps_the_order_of_nulls_and_values_however_they_are_appended() {
        let mut s: Sparse<StringBuilder> = Column::with_capacity(4);
        s.append_null();
        s.append_null();
        s.append_value("a"); // through DerefMut: the two nulls go first
        s.append_option(None::<&str>);
        // A value written in parts through the builder, as the decoder joins paths.
        write!(&mut *s, "b/").unwrap();
        s.append_value("c");
        s.append_option(Some("d"));
        s.append_null();
        assert_eq!(s.len(), 7);
        assert_eq!(Column::rows(&s), 7);
        let a = s.cut();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<Option<&str>> = a.iter().collect();
        assert_eq!(got, [None, None, Some("a"), None, Some("b/c"), Some("d"), None]);
        // The builder starts again empty, nothing counted.
        assert_eq!(s.len(), 0);
        s.append_null();
        let a = s.cut();
        assert_eq!((a.len(), a.null_count()), (1, 1));
    }

    #[test]
    fn sparse_primitives_and_an_all_null_cut() {
        let mut s: Sparse<PrimitiveBuilder<Int64Type>> = Column::with_capacity(2);
        for _ in 0..3 {
            s.append_null();
        }
        let a = s.cut();
        assert_eq!((a.len(), a.null_count()), (3, 3));
        s.append_option(Some(7));
        s.append_null();
        s.append_option(Some(-1));
        let a = s.cut();
        let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some(7), None, Some(-1)]);
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
