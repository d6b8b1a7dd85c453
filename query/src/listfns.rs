//! `array_length` (alias `list_length`) read from a list's offsets.
//!
//! DataFusion 55's `array_length` makes each row's list into an array of its own (a
//! slice: an allocation and reference counts per row) to ask its length. The argv query of
//! the benchmark (1.2 M rows, `array_length(argv)` in its `WHERE` and its `GROUP BY`)
//! spent about 10% of its `perf` samples there. This one answers the common form (one
//! argument, a column of `List` or `LargeList`) from the offsets, one subtraction a row,
//! and hands every other form (a dimension, a scalar, a fixed-size list) to DataFusion's.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericListArray, OffsetSizeTrait, UInt64Array};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::functions_nested::length::ArrayLength as DataFusionArrayLength;
use datafusion::logical_expr::{ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

/// DataFusion's `array_length`, with the one-argument form over a list column answered
/// from its offsets.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct ArrayLength {
    datafusion: DataFusionArrayLength,
}

impl ArrayLength {
    /// The function to register in place of DataFusion's (same name and alias).
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(ArrayLength::default())
    }
}

/// Each row's length: the difference of its offsets; null where the list is.
fn lengths<O: OffsetSizeTrait>(list: &GenericListArray<O>) -> ArrayRef {
    let lengths: ScalarBuffer<u64> = list.value_offsets().windows(2).map(|w| (w[1] - w[0]).as_usize() as u64).collect();
    Arc::new(UInt64Array::new(lengths, list.nulls().cloned()))
}

impl ScalarUDFImpl for ArrayLength {
    fn name(&self) -> &str {
        self.datafusion.name()
    }

    fn signature(&self) -> &Signature {
        self.datafusion.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.datafusion.return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let [ColumnarValue::Array(a)] = args.args.as_slice() {
            match a.data_type() {
                DataType::List(_) => return Ok(ColumnarValue::Array(lengths(a.as_list::<i32>()))),
                DataType::LargeList(_) => return Ok(ColumnarValue::Array(lengths(a.as_list::<i64>()))),
                _ => {}
            }
        }
        self.datafusion.invoke_with_args(args)
    }

    fn aliases(&self) -> &[String] {
        self.datafusion.aliases()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.datafusion.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, LargeListArray, ListArray, RecordBatch};
    use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    /// Lists of every shape the offsets can take: empty, null (over a non-empty range, as
    /// a filter's output may leave one), long, and a batch sliced so its offsets do not
    /// start at 0; as `List` and `LargeList`.
    fn table() -> MemTable {
        let item = Arc::new(Field::new("item", DataType::Int32, true));
        let values = Arc::new(Int32Array::from_iter((0..40).map(|i| (i % 7 != 0).then_some(i))));
        let ends: [i32; 10] = [0, 0, 3, 5, 5, 17, 18, 30, 30, 40];
        let nulls = NullBuffer::from(vec![true, true, false, true, true, true, true, false, true]);
        let offsets = OffsetBuffer::new(ends.to_vec().into());
        let list = ListArray::new(item.clone(), offsets, values.clone(), Some(nulls.clone()));
        let offsets = OffsetBuffer::new(ends.iter().map(|&e| i64::from(e)).collect());
        let large = LargeListArray::new(item, offsets, values, Some(nulls));
        let schema = Arc::new(Schema::new(vec![
            Field::new("l", list.data_type().clone(), true),
            Field::new("g", large.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(list), Arc::new(large)]).unwrap();
        MemTable::try_new(schema, vec![vec![batch.clone(), batch.slice(3, 5)]]).unwrap()
    }

    /// The list column of [`table`], as a `List`.
    fn list() -> ArrayRef {
        let item = Arc::new(Field::new("item", DataType::Int32, true));
        let values = Arc::new(Int32Array::from_iter((0..40).map(|i| (i % 7 != 0).then_some(i))));
        let offsets = OffsetBuffer::new(vec![0, 0, 3, 5, 5, 17, 18, 30, 30, 40].into());
        let nulls = NullBuffer::from(vec![true, true, false, true, true, true, true, false, true]);
        Arc::new(ListArray::new(item, offsets, values, Some(nulls)).slice(1, 8))
    }

    #[test]
    fn reads_a_list_columns_lengths_from_its_offsets() {
        use datafusion::common::config::ConfigOptions;
        let list = list();
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(list.clone())],
            arg_fields: vec![Arc::new(Field::new("l", list.data_type().clone(), true))],
            number_rows: list.len(),
            return_field: Arc::new(Field::new("n", DataType::UInt64, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(got) = ArrayLength::default().invoke_with_args(args).unwrap() else {
            panic!("not an array")
        };
        let got = got.as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        let want = [Some(3), None, Some(0), Some(12), Some(1), Some(12), None, Some(10)];
        assert_eq!(got.iter().collect::<Vec<_>>(), want);
        // The list's own null buffer, not one made row by row: the offsets' path ran.
        assert!(got.nulls().unwrap().inner().inner().ptr_eq(list.nulls().unwrap().inner().inner()));
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        pretty_format_batches(&ctx.sql(sql).await.unwrap().collect().await.unwrap()).unwrap().to_string()
    }

    #[tokio::test]
    async fn answers_as_datafusion_does() {
        let ours = SessionContext::new();
        ours.register_udf(ArrayLength::udf());
        let theirs = SessionContext::new();
        for ctx in [&ours, &theirs] {
            ctx.register_table("t", Arc::new(table())).unwrap();
        }
        for sql in [
            "SELECT array_length(l) AS a, list_length(g) AS b, array_length(l, 1) AS c, array_length(g, 2) AS d FROM t",
            "SELECT array_length(make_array(1, 2, 3)) AS a, array_length(make_array(make_array(1), make_array(2, 3)), 2) AS b",
            "SELECT array_length(l) AS a, count(*) AS n FROM t WHERE array_length(g) > 1 GROUP BY 1 ORDER BY 1",
        ] {
            let (a, b) = (rows(&ours, sql).await, rows(&theirs, sql).await);
            assert_eq!(a, b, "{sql}");
        }
        // The lengths themselves, so that the two cannot agree on a wrong answer.
        let got = rows(&ours, "SELECT array_length(l) AS a FROM t").await;
        let want: Vec<&str> = vec!["0", "3", "", "0", "12", "1", "12", "", "10", "0", "12", "1", "12", ""];
        let got: Vec<&str> =
            got.lines().filter(|l| l.starts_with('|')).skip(1).map(|l| l.trim_matches(['|', ' '])).collect();
        assert_eq!(got, want);
    }
}
