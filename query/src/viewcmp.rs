//! `column = 'text'` and `column <> 'text'` over strings read as views, compared a view at a
//! time.
//!
//! Arrow's comparison kernel makes each row's view into a string and compares its bytes:
//! in `SELECT count(*) FROM file WHERE path = 'README.md'` over 24 M rows that was 28% of
//! the `perf` samples, and `op = 'open'` 14% of the broad filter's. A view holds the
//! string's length and its first four bytes, or all of it when it is 12 bytes or less, so
//! a needle of 12 bytes or less is equal only to a view with the same length and bytes
//! (one masked 16-byte compare), and a longer one only to a view with the same length and
//! first four bytes (8 bytes), whose string is then compared. This rule puts [`ViewEq`] in
//! place of such comparisons in a `FilterExec`'s predicate; elsewhere (a join's filter, a
//! scan's pushed-down filter, which also prunes by statistics) they stay as they are.
//!
//! It runs after DataFusion's rules, which have already used what `s = 'x'` tells them (`s`
//! is constant and not null below the filter; a contradiction means no rows): the rebuilt
//! filter no longer says so, and the nodes above it, rebuilt, no longer claim what they
//! derived from it (an aggregation on `s` ordered by it runs as an unordered one). The
//! plan's choices stay, and stay right: the rows do hold one value of `s`.
//!
//! Where the filter's column goes no further than the comparisons (`SELECT count(*) ...
//! WHERE path = 'x'`) and comes straight from a Parquet scan, the scan reads it as a
//! dictionary ([`crate::dictscan`]) and [`ViewEq`] compares each dictionary entry once per
//! batch, then looks each row's result up by its index.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, DictionaryArray, Int32Array, StringViewArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::kernels::cmp;
use datafusion::arrow::datatypes::{DataType, Int32Type, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::ExecutionPlan;

use crate::dictscan::{self, FileSchemas};

/// The rule: see the module's doc. With the segments' schemas (`files`), a compared
/// column read nowhere else is read as a dictionary.
#[derive(Debug, Default)]
pub struct ViewEqRule {
    pub files: FileSchemas,
}

impl PhysicalOptimizerRule for ViewEqRule {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else { return Ok(Transformed::no(node)) };
            let schema = filter.input().schema();
            let predicate = filter.predicate().clone().transform_up(|e| {
                Ok(match ViewEq::of(&e, &schema) {
                    Some(v) => Transformed::yes(Arc::new(v) as Arc<dyn PhysicalExpr>),
                    None => Transformed::no(e),
                })
            })?;
            if !predicate.transformed {
                return Ok(Transformed::no(node));
            }
            let mut new = FilterExecBuilder::from(filter).with_predicate(predicate.data.clone());
            let only = compared_only(&predicate.data, filter.projection().as_deref());
            if !only.is_empty() {
                if let Some(input) = dictscan::retype(filter.input(), &only, &self.files)? {
                    let dict = predicate.data.transform_up(|e| {
                        let on =
                            |v: &ViewEq| v.column.downcast_ref::<Column>().is_some_and(|c| only.contains(&c.index()));
                        Ok(match e.downcast_ref::<ViewEq>() {
                            Some(v) if on(v) => {
                                Transformed::yes(Arc::new(ViewEq { dict: true, ..v.clone() }) as Arc<dyn PhysicalExpr>)
                            }
                            _ => Transformed::no(e),
                        })
                    })?;
                    new = new.with_input(input).with_predicate(dict.data);
                }
            }
            Ok(Transformed::yes(Arc::new(new.build()?) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "capq_view_eq"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The columns that `predicate` reads only as a [`ViewEq`]'s column and the filter does
/// not pass on (`projection`: the input columns it outputs, all without one).
fn compared_only(predicate: &Arc<dyn PhysicalExpr>, projection: Option<&[usize]>) -> Vec<usize> {
    let mut compared: Vec<usize> = Vec::new();
    let _ = predicate.apply(|e| {
        if let Some(c) = e.downcast_ref::<ViewEq>().and_then(|v| v.column.downcast_ref::<Column>()) {
            compared.push(c.index());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let all = collect_all(predicate);
    let mut only: Vec<usize> = compared
        .iter()
        .copied()
        .filter(|c| all.iter().filter(|x| *x == c).count() == compared.iter().filter(|x| *x == c).count())
        .filter(|c| projection.is_some_and(|p| !p.contains(c)))
        .collect();
    only.sort_unstable();
    only.dedup();
    only
}

/// Every column reference in `e`, once per place it is read.
fn collect_all(e: &Arc<dyn PhysicalExpr>) -> Vec<usize> {
    let mut all = Vec::new();
    let _ = e.apply(|x| {
        if let Some(c) = x.downcast_ref::<Column>() {
            all.push(c.index());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    all
}

/// `column = needle` (or `<>` when `negated`), `column` a column of string views, or of
/// dictionaries (`dict`: only for showing the plan, either is compared).
#[derive(Debug, Eq, Clone)]
pub struct ViewEq {
    column: Arc<dyn PhysicalExpr>,
    needle: String,
    negated: bool,
    dict: bool,
}

impl PartialEq for ViewEq {
    fn eq(&self, other: &ViewEq) -> bool {
        self.column.eq(&other.column) && self.needle == other.needle && self.negated == other.negated
    }
}

impl Hash for ViewEq {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.column.hash(state);
        self.needle.hash(state);
        self.negated.hash(state);
    }
}

impl ViewEq {
    /// `e` as a `ViewEq` where it is `=` or `<>` between a column of views (of `schema`)
    /// and a string literal, either way round.
    fn of(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<ViewEq> {
        let b = e.downcast_ref::<BinaryExpr>()?;
        let negated = match b.op() {
            Operator::Eq => false,
            Operator::NotEq => true,
            _ => return None,
        };
        let (column, literal) = match (b.left().downcast_ref::<Column>(), b.right().downcast_ref::<Literal>()) {
            (Some(_), Some(l)) => (b.left(), l),
            _ => (b.right(), b.left().downcast_ref::<Literal>()?),
        };
        let c = column.downcast_ref::<Column>()?;
        if schema.fields().get(c.index())?.data_type() != &DataType::Utf8View {
            return None;
        }
        let needle = match literal.value() {
            ScalarValue::Utf8View(Some(s)) | ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
            _ => return None,
        };
        Some(ViewEq { column: column.clone(), needle, negated, dict: false })
    }
}

/// Whether each row of `strings` is `needle` (is not, when `negated`); null where the row is.
fn compare(strings: &StringViewArray, needle: &[u8], negated: bool) -> BooleanArray {
    let views = strings.views();
    let n = needle.len();
    let bits = if n <= 12 {
        // Length and bytes, as the view holds them; bytes past the string's are not
        // compared (the format asks for zeros, the mask does not rely on it).
        let mut w = [0u8; 16];
        w[..4].copy_from_slice(&(n as u32).to_le_bytes());
        w[4..4 + n].copy_from_slice(needle);
        let want = u128::from_le_bytes(w);
        let mask = if n == 12 { u128::MAX } else { (1u128 << ((4 + n) * 8)) - 1 };
        BooleanBuffer::collect_bool(views.len(), |i| ((views[i] ^ want) & mask == 0) != negated)
    } else {
        let mut w = [0u8; 8];
        w[..4].copy_from_slice(&(n as u32).to_le_bytes());
        w[4..].copy_from_slice(&needle[..4]);
        let want = u64::from_le_bytes(w);
        BooleanBuffer::collect_bool(views.len(), |i| {
            (views[i] as u64 == want && strings.value(i).as_bytes() == needle) != negated
        })
    };
    BooleanArray::new(bits, strings.nulls().cloned())
}

/// [`compare`] for a dictionary of strings: each entry compared once, each row's result
/// looked up by its index; null where the row or its entry is.
fn compare_dict(d: &DictionaryArray<Int32Type>, needle: &[u8], negated: bool) -> Result<BooleanArray> {
    let values = d
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| DataFusionError::Internal("ViewEq: a dictionary not of strings".into()))?;
    let keys = d.keys().values();
    if values.len() > keys.len() {
        // More entries than rows: each row's compared instead.
        let bits = BooleanBuffer::collect_bool(keys.len(), |i| {
            let k = keys[i] as usize;
            k < values.len() && (values.value(k).as_bytes() == needle) != negated
        });
        return Ok(BooleanArray::new(bits, d.logical_nulls()));
    }
    // A Parquet dictionary holds each value once: the needle is at most one entry, and a
    // row equals it when its index is that entry's (one integer compare a row).
    let mut at = (0..values.len()).filter(|&i| values.value(i).as_bytes() == needle);
    let bits = match (at.next(), at.next()) {
        (None, _) if negated => BooleanBuffer::new_set(keys.len()),
        (None, _) => BooleanBuffer::new_unset(keys.len()),
        (Some(m), None) => {
            // Arrow's kernel, built at its crate's opt-level (3) where capq's is 1: a loop
            // of this one compare here took 28% of a filter's time, 5 times arrow's.
            let m = Int32Array::new_scalar(m as i32);
            let eq = if negated { cmp::neq(d.keys(), &m)? } else { cmp::eq(d.keys(), &m)? };
            eq.values().clone()
        }
        (Some(_), Some(_)) => {
            let entries =
                BooleanBuffer::collect_bool(values.len(), |i| (values.value(i).as_bytes() == needle) != negated);
            // A null row's index may be anything: it reads false, and never out of bounds.
            BooleanBuffer::collect_bool(keys.len(), |i| {
                let k = keys[i] as usize;
                k < entries.len() && entries.value(k)
            })
        }
    };
    Ok(BooleanArray::new(bits, d.logical_nulls()))
}

impl fmt::Display for ViewEq {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        let on = if self.dict { "dictionaries" } else { "views" };
        write!(f, "{} {op} {} (on {on})", self.column, self.needle)
    }
}

impl PhysicalExpr for ViewEq {
    fn data_type(&self, _schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, schema: &Schema) -> Result<bool> {
        self.column.nullable(schema)
    }

    fn evaluate(&self, batch: &datafusion::arrow::array::RecordBatch) -> Result<ColumnarValue> {
        let needle = self.needle.as_bytes();
        match self.column.evaluate(batch)? {
            ColumnarValue::Array(a) => {
                if let Some(d) = a.as_dictionary_opt::<Int32Type>() {
                    return Ok(ColumnarValue::Array(Arc::new(compare_dict(d, needle, self.negated)?)));
                }
                let strings = a.as_string_view_opt().ok_or_else(|| {
                    DataFusionError::Internal(format!("ViewEq: {} is not of string views", self.column))
                })?;
                Ok(ColumnarValue::Array(Arc::new(compare(strings, needle, self.negated))))
            }
            ColumnarValue::Scalar(s) => {
                let value = match s {
                    ScalarValue::Utf8View(v) | ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) => v,
                    other => return Err(DataFusionError::Internal(format!("ViewEq: {other:?} is not a string"))),
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Boolean(value.map(|v| (v.as_bytes() == needle) != self.negated))))
            }
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.column]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(ViewEq { column: children.swap_remove(0), needle: self.needle.clone(), ..*self }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.column.fmt_sql(f)?;
        let op = if self.negated { "!=" } else { "=" };
        write!(f, " {op} '{}'", self.needle.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, StringViewBuilder};
    use datafusion::arrow::datatypes::Field;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Strings of every length around the inline limit, with the needles' prefixes and
    /// lengths alike but bytes not, nulls, non-UTF-8-like edge bytes, and a batch sliced
    /// off another.
    fn table() -> MemTable {
        let words = [
            "",
            "a",
            "op",
            "open",
            "opem",
            "openat",
            "README.md",
            "README.mc",
            "twelve_bytes",
            "twelve_bytez",
            "thirteen_byte",
            "thirteen_bytf",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.7",
            "/usr/lib/x86_64-linux-gnu/libc.so",
            "é",
            "it's",
        ];
        let mut b = StringViewBuilder::new();
        for i in 0..600 {
            if i % 11 == 0 {
                b.append_null();
            } else {
                b.append_value(words[(i * 7) % words.len()]);
            }
        }
        // A plain string column first, so the view column is not column 0: its words in
        // another order.
        let u = StringArray::from_iter_values((0..600).map(|i| words[(i * 5) % words.len()]));
        let columns: Vec<ArrayRef> = vec![Arc::new(u), Arc::new(b.finish())];
        let schema = Arc::new(Schema::new(vec![
            Field::new("u", DataType::Utf8, false),
            Field::new("s", DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        MemTable::try_new(schema, vec![vec![batch.slice(0, 350), batch.slice(350, 250), batch.slice(13, 100)]]).unwrap()
    }

    fn ctx(rule: bool) -> SessionContext {
        let mut b = SessionStateBuilder::new().with_config(SessionConfig::new()).with_default_features();
        if rule {
            b = b.with_physical_optimizer_rule(Arc::new(ViewEqRule::default()));
        }
        let ctx = SessionContext::new_with_state(b.build());
        ctx.register_table("t", Arc::new(table())).unwrap();
        ctx
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        pretty_format_batches(&ctx.sql(sql).await.unwrap().collect().await.unwrap()).unwrap().to_string()
    }

    #[tokio::test]
    async fn answers_as_arrow_does() {
        let (with, without) = (ctx(true), ctx(false));
        let needles = [
            "",
            "a",
            "open",
            "README.md",
            "twelve_bytes",
            "thirteen_byte",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.8",
            "/usr/lib/x86_64-linux-gnu/libc.so",
            "é",
            "it's",
            "absent",
        ];
        for needle in needles {
            let lit = format!("'{}'", needle.replace('\'', "''"));
            for sql in [
                format!("SELECT count(*) AS n FROM t WHERE s = {lit}"),
                format!("SELECT count(*) AS n, count(s) AS m FROM t WHERE s <> {lit}"),
                format!("SELECT count(*) AS n FROM t WHERE {lit} = s OR s IS NULL"),
                format!("SELECT s, count(*) AS n FROM t WHERE NOT (s = {lit}) GROUP BY s ORDER BY s"),
                // What DataFusion derived from `s = ...` (one value, ordered) no longer
                // said above the filter.
                format!("SELECT s, count(*) AS n FROM t WHERE s = {lit} GROUP BY s ORDER BY s"),
                // A filter whose output drops columns, on the second column.
                format!("SELECT u FROM t WHERE s = {lit} AND u <> 'a' ORDER BY u"),
            ] {
                let explain = rows(&with, &format!("EXPLAIN {sql}")).await;
                assert!(explain.contains("(on views)"), "{sql}: {explain}");
                assert!(!rows(&without, &format!("EXPLAIN {sql}")).await.contains("(on views)"));
                assert_eq!(rows(&with, &sql).await, rows(&without, &sql).await, "{sql}");
            }
        }
        // A count that cannot be right by chance: 600 rows, 55 null, the rest cycling
        // through 17 words (i * 7 mod 17), of which "open" is the 4th.
        let want = (0..600).filter(|i| i % 11 != 0 && (i * 7) % 17 == 3).count()
            + (13..113).filter(|i| i % 11 != 0 && (i * 7) % 17 == 3).count();
        assert_eq!(
            rows(&with, "SELECT count(*) AS n FROM t WHERE s = 'open'").await,
            rows(&without, &format!("SELECT {want} AS n")).await
        );
    }

    #[tokio::test]
    async fn leaves_what_it_cannot_compare_by_views() {
        let c = ctx(true);
        for sql in [
            "SELECT count(*) FROM t WHERE s < 'open'",
            // Plain strings; views against plain strings (a cast between them).
            "SELECT count(*) FROM t WHERE u = 'open'",
            "SELECT count(*) FROM t WHERE s = u",
            "SELECT count(*) FROM t WHERE upper(s) = 'OPEN'",
        ] {
            assert!(!rows(&c, &format!("EXPLAIN {sql}")).await.contains("(on views)"), "{sql}");
        }
    }

    #[test]
    fn dictionaries_compare_as_their_strings_do() {
        use datafusion::arrow::array::{Int32Array, StringArray};
        // Entries: none, one, or two (a dictionary made in memory may repeat a value) equal
        // to the needle; null entries and null rows (their indices out of bounds too);
        // fewer entries than rows and more.
        let dicts: [Vec<Option<&str>>; 4] = [
            vec![Some("open"), Some("close"), None, Some("openat")],
            vec![Some("close"), Some("read")],
            vec![Some("open"), Some("close"), Some("open")],
            (0..40).map(|i| Some(["open", "x", "close", "y"][i % 4])).collect(),
        ];
        for values in dicts {
            let n = values.len() as i32;
            // Every seventh row null; the fourth's index out of bounds.
            let valid: Vec<bool> = (0..30).map(|i| i % 7 != 3).collect();
            let raw: Vec<i32> = (0..30).map(|i| if i == 3 { 1000 } else { i * 5 % n }).collect();
            let keys = Int32Array::new(raw.into(), Some(valid.into()));
            let d = DictionaryArray::new(keys, Arc::new(StringArray::from(values.clone())));
            for needle in ["open", "close", "absent", ""] {
                for negated in [false, true] {
                    let got = compare_dict(&d, needle.as_bytes(), negated).unwrap();
                    let want: BooleanArray = (0..d.len())
                        .map(|i| {
                            let k = d.keys().is_valid(i).then(|| d.keys().value(i) as usize)?;
                            values[k].map(|v| (v == needle) != negated)
                        })
                        .collect();
                    assert_eq!(got, want, "{values:?} {needle} {negated}");
                }
            }
        }
    }
}
