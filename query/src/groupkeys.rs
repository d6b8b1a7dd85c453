//! `GROUP BY` on string columns, grouped on integer keys: each distinct string is hashed
//! once per dictionary page, not once per row.
//!
//! capq reads strings as views (catalog::view_types): a row of a dictionary-encoded
//! column is a 16-byte view into the page's dictionary, and every row holding the same
//! dictionary entry holds the same view. DataFusion's aggregation hashes and compares the
//! string bytes of every row (a group-by on `path` over 24 M rows: 80% of its time). This
//! rule replaces a partial (or single) aggregation with string group columns by a
//! [`ChooseExec`], which per partition runs either that aggregation as it was or the same
//! one over keys: a [`KeysExec`] turns each chosen column into a `UInt32` key per row,
//! remembering the key of each view while the batches keep the same buffers (so a string
//! is hashed once per dictionary page), the aggregation groups on the integers, and a
//! [`StringsExec`] turns the keys back into the strings, so the plan above sees the
//! aggregation's own output. Where the keyed column is the only group column and every
//! aggregate has a groups accumulator, a [`DenseAggExec`] takes the place of all three:
//! it keys the column itself, straight into the accumulators' group indices, with no
//! table of groups. A column is keyed where that pays: its views repeat and, unless the
//! keys are group indices, are mostly of long strings (ChooseExec's doc). `EXPLAIN
//! ANALYZE` says how many partitions ran keyed and how many of those on the keys as group
//! indices; the keyed aggregation's own metrics are not shown.
//!
//! Keys are per partition and column (a partition's KeysExec and StringsExec share one
//! table of strings per column, taken under a lock once per batch, not per row). A group
//! column stays as it is when the aggregation also reads it elsewhere (an aggregate's
//! argument or ORDER BY, a FILTER, another group expression); the rule leaves
//! aggregations that need their input ordered, or have grouping sets, a limit or a
//! dynamic filter, to DataFusion.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, DictionaryArray, RecordBatch, StringArray, StringViewArray, StringViewBuilder,
    UInt32Array,
};
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, UInt32Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{aggregate_expressions, AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    displayable, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, InputOrderMode, Partitioning,
    PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use hashbrown::HashTable;

use crate::dictscan::{self, FileSchemas};

/// The rule: see the module's doc. With the segments' schemas (`files`), keyed columns
/// straight from a Parquet scan are read as dictionaries ([`crate::dictscan`]).
#[derive(Debug, Default)]
pub struct StringGroupKeys {
    pub files: FileSchemas,
}

impl PhysicalOptimizerRule for StringGroupKeys {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else { return Ok(Transformed::no(node)) };
            match rewrite(agg, &node, &self.files)? {
                Some(new) => Ok(Transformed::yes(new)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "capq_string_group_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `agg` as a [`ChooseExec`], or `None` where the rule does not apply (the module's doc).
fn rewrite(
    agg: &AggregateExec,
    node: &Arc<dyn ExecutionPlan>,
    files: &FileSchemas,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if !matches!(agg.mode(), AggregateMode::Partial | AggregateMode::Single) {
        return Ok(None);
    }
    let group = agg.group_expr();
    if group.has_grouping_set() || group.groups().len() != 1 {
        return Ok(None);
    }
    if agg.limit_options().is_some()
        || !agg.dynamic_expressions_produced().is_empty()
        || !matches!(agg.input_order_mode(), InputOrderMode::Linear)
        || agg.required_input_ordering().iter().any(|r| r.is_some())
    {
        return Ok(None);
    }
    let input = agg.input();
    let schema = input.schema();
    // Every expression the aggregation evaluates (group expressions, arguments, their
    // ORDER BYs, filters): a column one of them reads, other than as one bare group
    // column, cannot become keys.
    let mut read: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
    node.apply_expressions(&mut |e| {
        read.push(e.clone());
        Ok(TreeNodeRecursion::Continue)
    })?;
    let uses = |index: usize| -> usize {
        read.iter().map(|e| collect_columns(e).iter().filter(|c| c.index() == index).count()).sum()
    };
    let candidates: Vec<Candidate> = group
        .expr()
        .iter()
        .enumerate()
        .filter_map(|(position, (e, _))| {
            let c = e.downcast_ref::<Column>()?;
            let ok = schema.field(c.index()).data_type() == &DataType::Utf8View && uses(c.index()) == 1;
            ok.then_some(Candidate { position, column: c.index() })
        })
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let columns: Vec<usize> = candidates.iter().map(|c| c.column).collect();
    let (input, dict) = match dictscan::retype(input, &columns, files)? {
        Some(read) => (read, true),
        None => (input.clone(), false),
    };
    // Each execution of a partition makes its plan over a hand-off of its own: DataFusion's
    // aggregation as it was (`plain`, given a new child), or the one over keys for the
    // columns that partition keys.
    Ok(Some(Arc::new(ChooseExec {
        input,
        dict,
        candidates,
        agg: Arc::new(AggParts::of(agg)),
        plain: node.clone(),
        props: agg.properties().clone(),
        chosen: Default::default(),
    })))
}

/// A group column that may become keys: its place among the group columns (and so in
/// the aggregation's output) and in the input.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    position: usize,
    column: usize,
}

/// What a keyed aggregation is made of: the replaced one's parts.
#[derive(Debug)]
struct AggParts {
    mode: AggregateMode,
    group: PhysicalGroupBy,
    aggr: Vec<Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>>,
    filter: Vec<Option<Arc<dyn PhysicalExpr>>>,
}

impl AggParts {
    fn of(agg: &AggregateExec) -> AggParts {
        AggParts {
            mode: *agg.mode(),
            group: agg.group_expr().clone(),
            aggr: agg.aggr_expr().to_vec(),
            filter: agg.filter_expr().to_vec(),
        }
    }

    /// Whether it can run as a [`DenseAggExec`] once its group column is keyed: one group
    /// column, and every aggregate with a groups accumulator that needs no order.
    fn dense(&self) -> bool {
        self.group.expr().len() == 1
            && self.aggr.iter().all(|e| e.order_bys().is_empty() && e.groups_accumulator_supported())
    }
}

/// `name@index, ...` of `columns` in `schema`, as DataFusion shows columns in plans.
fn names(schema: &SchemaRef, columns: &[usize]) -> String {
    let names: Vec<String> = columns.iter().map(|&c| format!("{}@{c}", schema.field(c).name())).collect();
    names.join(", ")
}

/// What the four nodes below have alike: a name, their properties kept in `props`, and
/// no expressions of their own.
macro_rules! plan_basics {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(&self) -> &Arc<PlanProperties> {
            &self.props
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }
    };
}

/// One partition's stream, each on its way from [`ChooseExec`] to the plan it chose.
type Slots = Arc<Vec<Mutex<Option<SendableRecordBatchStream>>>>;

/// A plan for one partition and the hand-off that feeds it.
type Fed = (Arc<dyn ExecutionPlan>, Arc<HandoffExec>);

/// A leaf that gives each partition the stream [`ChooseExec`] put there: its input's.
struct HandoffExec {
    props: Arc<PlanProperties>,
    slots: Slots,
}

impl HandoffExec {
    fn new(input: &Arc<dyn ExecutionPlan>) -> HandoffExec {
        let n = input.output_partitioning().partition_count();
        HandoffExec { props: input.properties().clone(), slots: Arc::new((0..n).map(|_| Mutex::new(None)).collect()) }
    }
}

impl fmt::Debug for HandoffExec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("HandoffExec")
    }
}

impl DisplayAs for HandoffExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("capq HandoffExec")
    }
}

impl ExecutionPlan for HandoffExec {
    plan_basics!("HandoffExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let slot =
            self.slots.get(partition).ok_or_else(|| DataFusionError::Internal("HandoffExec partition".into()))?;
        slot.lock()
            .map_err(|_| poisoned())?
            .take()
            .ok_or_else(|| DataFusionError::Internal("HandoffExec: no stream handed over".into()))
    }
}

/// Per partition, reads the first two batches of its input and keys each candidate
/// column whose views there share their buffers (a dictionary page decoded into views:
/// the views of one string repeat) and are at least half of strings longer than 12 bytes;
/// with no column to key, DataFusion's aggregation runs as it was. A plain page, or
/// strings made in memory, give every row its own copy, and keys would only add work (up
/// to 2.1 times the time). Strings of 12 bytes or less live in their views, which
/// DataFusion compares without hashing bytes: grouped again by DataFusion, their keys made
/// a group-by on `op` about 20% slower, but as the group indices of a [`DenseAggExec`]
/// they took 12% less CPU (README, Queries), so there short strings are keyed too.
pub struct ChooseExec {
    input: Arc<dyn ExecutionPlan>,
    /// Every candidate comes as a dictionary: each is keyed by its indices, always.
    dict: bool,
    candidates: Vec<Candidate>,
    agg: Arc<AggParts>,
    /// The aggregation as DataFusion planned it (its child is replaced by a hand-off).
    plain: Arc<dyn ExecutionPlan>,
    props: Arc<PlanProperties>,
    /// Partitions that ran keyed, all that ran, and those of the keyed that grouped on the
    /// keys directly (for EXPLAIN ANALYZE).
    chosen: Arc<(AtomicUsize, AtomicUsize, AtomicUsize)>,
}

impl fmt::Debug for ChooseExec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("ChooseExec").field("candidates", &self.candidates).field("plain", &self.plain).finish()
    }
}

impl DisplayAs for ChooseExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<usize> = self.candidates.iter().map(|c| c.column).collect();
        let how = if self.dict { "of their dictionaries" } else { "where their views repeat" };
        write!(f, "capq StringGroupBy: {} on keys {how}", names(&self.input.schema(), &columns))?;
        let (keyed, all) = (self.chosen.0.load(Relaxed), self.chosen.1.load(Relaxed));
        if all > 0 {
            let dense = self.chosen.2.load(Relaxed);
            write!(f, ", keyed in {keyed} of {all} partitions ({dense} with the keys as group indices)")?;
        }
        write!(f, "; as: {}", displayable(self.plain.as_ref()).one_line().to_string().trim_end())
    }
}

/// Whether `column`'s views in the two batches share their buffers and at least half of
/// the first batch's are of strings longer than 12 bytes; or, with `short`, its views
/// there are mostly of shorter ones and repeat: at most one distinct view in 4 rows
/// (strings that live in their views share no buffers, so sharing says nothing of them,
/// and keys for strings that seldom repeat only add a hash and a copy per row).
fn repeats(head: &[RecordBatch], column: usize, short: bool) -> bool {
    let [a, b] = head else { return false };
    let (Some(a), Some(b)) = (a.column(column).as_string_view_opt(), b.column(column).as_string_view_opt()) else {
        return false;
    };
    let (x, y) = (a.data_buffers(), b.data_buffers());
    if x.len() != y.len() || !x.iter().zip(y).all(|(x, y)| x.ptr_eq(y)) {
        return false;
    }
    let long = a.views().iter().filter(|v| **v as u32 > 12).count();
    long * 2 >= a.len() || (short && few(a.views(), a.len() / 4))
}

/// Whether `views` hold at most `limit` distinct values.
fn few(views: &[u128], limit: usize) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(limit.min(1 << 12));
    views.iter().all(|v| {
        seen.insert(*v);
        seen.len() <= limit
    })
}

impl ChooseExec {
    fn with_input(&self, input: Arc<dyn ExecutionPlan>) -> ChooseExec {
        ChooseExec {
            input,
            dict: self.dict,
            candidates: self.candidates.clone(),
            agg: self.agg.clone(),
            plain: self.plain.clone(),
            props: self.props.clone(),
            chosen: self.chosen.clone(),
        }
    }

    /// DataFusion's aggregation, fed by a new hand-off, for one partition.
    fn plain_plan(&self) -> Result<Fed> {
        let handoff = Arc::new(HandoffExec::new(&self.input));
        #[allow(deprecated)] // replace_children would need options that say the same
        let plan = self.plain.clone().with_new_children(vec![handoff.clone()])?;
        Ok((plan, handoff))
    }

    /// The aggregation over keys for `keyed`, fed by a new hand-off, for one partition.
    fn keyed_plan(&self, keyed: Vec<Candidate>) -> Result<Fed> {
        let handoff = Arc::new(HandoffExec::new(&self.input));
        let tables: Arc<Vec<Mutex<Strings>>> = Arc::new(keyed.iter().map(|_| Mutex::new(Strings::new())).collect());
        let columns = keyed.iter().map(|c| c.column).collect();
        let keys: Arc<dyn ExecutionPlan> = Arc::new(KeysExec::new(handoff.clone(), columns, tables.clone()));
        let a = &self.agg;
        // The group columns are the same expressions (by index): over keys they read keys.
        let agg = AggregateExec::try_new(
            a.mode,
            a.group.clone(),
            a.aggr.clone(),
            a.filter.clone(),
            keys.clone(),
            keys.schema(),
        )?;
        let positions = keyed.iter().map(|c| c.position).collect();
        Ok((Arc::new(StringsExec { input: Arc::new(agg), props: self.props.clone(), tables, positions }), handoff))
    }

    /// Where the one group column is keyed and every aggregate has a groups accumulator
    /// (and needs no order), the aggregation over keys as a [`DenseAggExec`], fed by a new
    /// hand-off, for one partition.
    fn dense_plan(&self, keyed: &[Candidate]) -> Result<Option<Fed>> {
        let a = &self.agg;
        if keyed.len() != 1 || !a.dense() {
            return Ok(None);
        }
        let handoff = Arc::new(HandoffExec::new(&self.input));
        let tables: Arc<Vec<Mutex<Strings>>> = Arc::new(vec![Mutex::new(Strings::new())]);
        let args = aggregate_expressions(&a.aggr, &a.mode, 0)?;
        let plan = DenseAggExec {
            input: handoff.clone(),
            column: keyed[0].column,
            agg: a.clone(),
            args,
            props: self.props.clone(),
            tables,
        };
        Ok(Some((Arc::new(plan), handoff)))
    }
}

impl ExecutionPlan for ChooseExec {
    plan_basics!("ChooseExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(self.with_input(children.swap_remove(0))))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, context.clone())?;
        let this = self.with_input(self.input.clone());
        let run = async move {
            let mut head = Vec::with_capacity(2);
            while head.len() < 2 {
                match input.next().await {
                    Some(b) => head.push(b?),
                    None => break,
                }
            }
            let short = this.agg.dense();
            let keyed: Vec<Candidate> = if this.dict {
                this.candidates.clone()
            } else {
                this.candidates.iter().filter(|c| repeats(&head, c.column, short)).copied().collect()
            };
            this.chosen.0.fetch_add(usize::from(!keyed.is_empty()), Relaxed);
            this.chosen.1.fetch_add(1, Relaxed);
            let dense = if keyed.is_empty() { None } else { this.dense_plan(&keyed)? };
            this.chosen.2.fetch_add(usize::from(dense.is_some()), Relaxed);
            let (plan, handoff) = match dense {
                Some(d) => d,
                None if keyed.is_empty() => this.plain_plan()?,
                None => this.keyed_plan(keyed)?,
            };
            let rest = futures::stream::iter(head.into_iter().map(Ok)).chain(input);
            let slot =
                handoff.slots.get(partition).ok_or_else(|| DataFusionError::Internal("ChooseExec partition".into()))?;
            *slot.lock().map_err(|_| poisoned())? =
                Some(Box::pin(RecordBatchStreamAdapter::new(this.input.schema(), rest)));
            plan.execute(partition, context)
        };
        let stream = futures::stream::once(run).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), stream)))
    }
}

/// A partition's strings and their keys (keys count up from 0), the strings end to end
/// in one buffer.
#[derive(Debug)]
struct Strings {
    table: HashTable<u32>,
    hashes: Vec<u64>,
    ends: Vec<usize>,
    bytes: String,
    hasher: foldhash::fast::RandomState,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            table: HashTable::new(),
            hashes: Vec::new(),
            ends: Vec::new(),
            bytes: String::new(),
            hasher: Default::default(),
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, k: u32) -> Option<&str> {
        let k = k as usize;
        let start = if k == 0 { 0 } else { *self.ends.get(k - 1)? };
        self.bytes.get(start..*self.ends.get(k)?)
    }

    fn key(&mut self, s: &str) -> Result<u32> {
        let h = self.hasher.hash_one(s.as_bytes());
        let Strings { table, hashes, ends, bytes, .. } = self;
        let same = |k: &u32| {
            let k = *k as usize;
            let start = if k == 0 { 0 } else { ends[k - 1] };
            &bytes[start..ends[k]] == s
        };
        if let Some(&k) = table.find(h, same) {
            return Ok(k);
        }
        // u32::MAX is no key: DictKeys marks entries not looked up yet with it.
        let k = u32::try_from(ends.len())
            .ok()
            .filter(|k| *k != NONE)
            .ok_or_else(|| DataFusionError::Execution("more than 4 G distinct strings in one group-by".into()))?;
        bytes.push_str(s);
        ends.push(bytes.len());
        hashes.push(h);
        table.insert_unique(h, k, |k| hashes[*k as usize]);
        Ok(k)
    }
}

/// Hashes a view (16 bytes) with one folded multiply, keyed per process; bytes 16 at a
/// time.
#[derive(Debug, Clone, Copy)]
struct ViewHasher(u64, u64);

impl ViewHasher {
    fn new() -> ViewHasher {
        let s = RandomState::new();
        ViewHasher(s.hash_one(1u64) | 1, s.hash_one(2u64) | 1)
    }
}

impl BuildHasher for ViewHasher {
    type Hasher = ViewHash;
    fn build_hasher(&self) -> ViewHash {
        ViewHash { k: *self, h: 0 }
    }
}

struct ViewHash {
    k: ViewHasher,
    h: u64,
}

impl ViewHash {
    fn fold(a: u64, b: u64) -> u64 {
        let m = (a as u128).wrapping_mul(b as u128);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

impl Hasher for ViewHash {
    fn finish(&self) -> u64 {
        self.h
    }

    fn write_u128(&mut self, v: u128) {
        self.h = ViewHash::fold((v as u64) ^ self.k.0, ((v >> 64) as u64) ^ self.k.1 ^ self.h);
    }

    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(16) {
            let mut w = [0u8; 16];
            w[..c.len()].copy_from_slice(c);
            self.write_u128(u128::from_le_bytes(w));
        }
    }
}

/// Its input with the string columns `columns` as `UInt32` keys (same names and nulls),
/// each with its table of strings (`tables`, in the same order).
#[derive(Debug)]
pub struct KeysExec {
    input: Arc<dyn ExecutionPlan>,
    columns: Vec<usize>,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
    tables: Arc<Vec<Mutex<Strings>>>,
}

impl KeysExec {
    fn new(input: Arc<dyn ExecutionPlan>, columns: Vec<usize>, tables: Arc<Vec<Mutex<Strings>>>) -> KeysExec {
        let fields: Vec<Field> = input
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let t = if columns.contains(&i) { DataType::UInt32 } else { f.data_type().clone() };
                f.as_ref().clone().with_data_type(t)
            })
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, input.schema().metadata().clone()));
        // No ordering or hash partitioning is claimed: keys do not sort as the strings do.
        let p = input.properties();
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(p.output_partitioning().partition_count()),
            p.emission_type,
            p.boundedness,
        );
        KeysExec { input, columns, schema, props: Arc::new(props), tables }
    }
}

impl DisplayAs for KeysExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "capq KeysExec: {} as keys", names(&self.schema, &self.columns))
    }
}

impl ExecutionPlan for KeysExec {
    plan_basics!("KeysExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(KeysExec::new(children.swap_remove(0), self.columns.clone(), self.tables.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let tables = self.tables.clone();
        let (schema, columns) = (self.schema.clone(), self.columns.clone());
        let mut caches: Vec<(ViewKeys, DictKeys)> =
            columns.iter().map(|_| (ViewKeys::new(), DictKeys::default())).collect();
        let stream = input.map(move |b| {
            let b = b?;
            let mut cols = b.columns().to_vec();
            for ((&c, (views, dict)), table) in columns.iter().zip(&mut caches).zip(tables.iter()) {
                let col = b.column(c);
                cols[c] = if let Some(d) = col.as_dictionary_opt::<Int32Type>() {
                    dict.keys(d, table)?
                } else {
                    let strings = col.as_string_view_opt().ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "KeysExec: column {c} is not of string views or a dictionary"
                        ))
                    })?;
                    views.keys(strings, table)?
                };
            }
            Ok(RecordBatch::try_new(schema.clone(), cols)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// A stream's view -> key memory, kept while the batches' buffers are the same ones (a
/// long string's view names its buffer and offset, so the same view is the same string
/// only within one set of buffers; a short one holds its bytes). In front of the map, a
/// direct-mapped cache by a hash of the view: one multiply, one load and one compare
/// that seldom fails once a dictionary's strings are in (finding keys was 41% of the path
/// group-by's `perf` samples with the map alone, 32% with the cache: README, Queries).
/// Where most views of a batch are new (a page without a dictionary, or more distinct
/// strings than rows repeat them), the next 8 batches go to the strings directly.
struct ViewKeys {
    buffers: Vec<Buffer>,
    keys: HashMap<u128, u32, ViewHasher>,
    /// The cache: the view last seen at each place, and its key + 1 (0: none since the
    /// buffers changed). A power of two long, doubled while the map holds more than an
    /// eighth as many views, up to `NEAR_MAX`: at a half, two common strings in one slot
    /// took turns missing (the path group-by, 252 paths a dictionary: 13% more CPU).
    near_views: Vec<u128>,
    near_keys: Vec<u32>,
    /// Some key was cached since the cache was last cleared.
    near_used: bool,
    hasher: ViewHasher,
    direct: u32,
}

const NEAR_MIN: usize = 1 << 10;
const NEAR_MAX: usize = 1 << 16;

impl ViewKeys {
    fn new() -> ViewKeys {
        let hasher = ViewHasher::new();
        ViewKeys {
            buffers: Vec::new(),
            keys: HashMap::with_hasher(hasher),
            near_views: vec![0; NEAR_MIN],
            near_keys: vec![0; NEAR_MIN],
            near_used: false,
            hasher,
            direct: 0,
        }
    }

    fn forget(&mut self) {
        self.keys.clear();
        if self.near_used {
            self.near_keys.fill(0);
            self.near_used = false;
        }
    }

    fn keys(&mut self, col: &StringViewArray, table: &Mutex<Strings>) -> Result<ArrayRef> {
        let bufs = col.data_buffers();
        if bufs.len() != self.buffers.len() || bufs.iter().zip(&self.buffers).any(|(a, b)| !a.ptr_eq(b)) {
            self.forget();
            self.buffers = bufs.to_vec();
        }
        let views = col.views();
        let nulls = col.nulls();
        let valid = |i: usize| nulls.is_none_or(|n| n.is_valid(i));
        let mut out = Vec::with_capacity(views.len());
        let mut t = table.lock().map_err(|_| poisoned())?;
        if self.direct > 0 {
            self.direct -= 1;
            for i in 0..views.len() {
                out.push(if valid(i) { t.key(col.value(i))? } else { 0 });
            }
        } else {
            let mut misses = 0;
            let mask = self.near_views.len() - 1;
            for (i, &v) in views.iter().enumerate() {
                let at = self.hasher.hash_one(v) as usize & mask;
                if self.near_views[at] == v && self.near_keys[at] != 0 {
                    out.push(self.near_keys[at] - 1);
                    continue;
                }
                if !valid(i) {
                    out.push(0);
                    continue;
                }
                let k = match self.keys.get(&v) {
                    Some(&k) => k,
                    None => {
                        misses += 1;
                        let k = t.key(col.value(i))?;
                        self.keys.insert(v, k);
                        k
                    }
                };
                self.near_views[at] = v;
                self.near_keys[at] = k.wrapping_add(1);
                self.near_used = true;
                out.push(k);
            }
            if misses * 2 > views.len() {
                self.direct = 8;
                self.forget();
            } else if self.keys.len() * 8 > self.near_views.len() && self.near_views.len() < NEAR_MAX {
                let n = self.near_views.len() * 2;
                self.near_views = vec![0; n];
                self.near_keys = vec![0; n];
            }
        }
        drop(t);
        Ok(Arc::new(UInt32Array::new(ScalarBuffer::from(out), nulls.cloned())))
    }
}

/// A stream's dictionary index -> key memory, kept while the batches share one
/// dictionary (the Parquet reader gives every batch of a column chunk the chunk's): a
/// dictionary entry is looked up in the strings once, when a row first uses it (a
/// [`DenseAggExec`] makes a group of every key), so a row's key is one load.
#[derive(Default)]
struct DictKeys {
    values: Option<ArrayData>,
    /// Each entry's key, or `NONE` while no row used it.
    keys: Vec<u32>,
    /// How many entries are `NONE`: with none left, no row needs looking at twice.
    unseen: usize,
}

const NONE: u32 = u32::MAX;

/// A row's group index (its key + 1) while its entry is not looked up yet: beyond every
/// group (usize is 64 bits wide on the targets capq is built for; on 32 this does not
/// compile).
const UNSEEN: usize = NONE as usize + 1;

impl DictKeys {
    /// Starts over unless `values` is the dictionary of the last batch.
    fn follow(&mut self, values: &ArrayRef) {
        let data = values.to_data();
        if !self.values.as_ref().is_some_and(|v| v.ptr_eq(&data)) {
            self.keys.clear();
            self.keys.resize(values.len(), NONE);
            self.unseen = values.len();
            self.values = Some(data);
        }
    }

    /// Entry `x`'s key, looked up in the strings the first time it is asked for.
    fn entry(&mut self, x: usize, strings: &StringArray, t: &mut Strings) -> Result<u32> {
        let k = self
            .keys
            .get_mut(x)
            .ok_or_else(|| DataFusionError::Internal(format!("dictionary index {x} out of bounds")))?;
        if *k == NONE {
            *k = t.key(strings.value(x))?;
            self.unseen -= 1;
        }
        Ok(*k)
    }

    fn strings(col: &DictionaryArray<Int32Type>) -> Result<&StringArray> {
        col.values()
            .as_string_opt::<i32>()
            .ok_or_else(|| DataFusionError::Internal("a group-by's dictionary is not of strings".into()))
    }

    fn keys(&mut self, col: &DictionaryArray<Int32Type>, table: &Mutex<Strings>) -> Result<ArrayRef> {
        self.follow(col.values());
        // A null row's index may be anything, in bounds or not: it reads NONE, then 0.
        let keys = self.keys.as_slice();
        let indices = col.keys().values();
        let mut out: Vec<u32> = indices.iter().map(|&x| keys.get(x as usize).copied().unwrap_or(NONE)).collect();
        let nulls = col.logical_nulls();
        if (self.unseen > 0 || nulls.is_some()) && out.contains(&NONE) {
            let strings = DictKeys::strings(col)?;
            let mut t = table.lock().map_err(|_| poisoned())?;
            for (i, o) in out.iter_mut().enumerate() {
                if *o == NONE {
                    *o = match nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                        true => 0,
                        false => self.entry(indices[i] as usize, strings, &mut t)?,
                    };
                }
            }
        }
        Ok(Arc::new(UInt32Array::new(ScalarBuffer::from(out), nulls)))
    }

    /// Appends each row's group index to `groups`: its key + 1, or 0 for a null row.
    /// Says whether a row was null.
    fn groups(
        &mut self,
        col: &DictionaryArray<Int32Type>,
        table: &Mutex<Strings>,
        groups: &mut Vec<usize>,
    ) -> Result<bool> {
        self.follow(col.values());
        let keys = self.keys.as_slice();
        let indices = col.keys().values();
        let at = groups.len();
        // NONE + 1 is UNSEEN; so is a null row's index out of bounds.
        groups.extend(indices.iter().map(|&x| keys.get(x as usize).map_or(UNSEEN, |&k| k as usize + 1)));
        let rows = &mut groups[at..];
        let nulls = col.logical_nulls().filter(|n| n.null_count() > 0);
        if let Some(n) = &nulls {
            for (g, valid) in rows.iter_mut().zip(n.iter()) {
                if !valid {
                    *g = 0;
                }
            }
        }
        // The Parquet reader checks every index against its dictionary: with every entry
        // keyed, no row is UNSEEN.
        debug_assert!(self.unseen > 0 || !rows.contains(&UNSEEN));
        if self.unseen > 0 && rows.contains(&UNSEEN) {
            let strings = DictKeys::strings(col)?;
            let mut t = table.lock().map_err(|_| poisoned())?;
            for (g, &x) in rows.iter_mut().zip(indices) {
                if *g == UNSEEN {
                    *g = self.entry(x as usize, strings, &mut t)? as usize + 1;
                }
            }
        }
        Ok(nulls.is_some())
    }
}

/// Each aggregate's arguments over `batch`, as `evaluate_many` gives them; an argument
/// that is a literal (`count(*)` counts `1`) is made into an array once, as long as the
/// longest batch yet, and sliced (filling one took 4% of the path group-by's time).
fn evaluate_args(
    args: &[Vec<Arc<dyn PhysicalExpr>>],
    batch: &RecordBatch,
    constants: &mut [Vec<Option<ArrayRef>>],
) -> Result<Vec<Vec<ArrayRef>>> {
    let n = batch.num_rows();
    let one = |e: &Arc<dyn PhysicalExpr>, kept: &mut Option<ArrayRef>| -> Result<ArrayRef> {
        if e.downcast_ref::<Literal>().is_none() {
            return e.evaluate(batch)?.into_array(n);
        }
        match kept {
            Some(a) if a.len() >= n => Ok(a.slice(0, n)),
            _ => Ok(kept.insert(e.evaluate(batch)?.into_array(n)?).clone()),
        }
    };
    args.iter().zip(constants).map(|(exprs, kept)| exprs.iter().zip(kept).map(|(e, k)| one(e, k)).collect()).collect()
}

fn poisoned() -> DataFusionError {
    DataFusionError::Internal("a group-by's string table was poisoned by a panic".into())
}

/// A partial or single aggregation grouped by one keyed column alone, run without a
/// table of groups: a row's group index is its key + 1 (0 is the null group), so the
/// accumulators are driven straight from the keys. DataFusion's aggregation over the keys
/// hashed and probed each key again (30% of the path group-by's `perf` samples). Emits
/// once its input ends: the strings in key order (the null group first, if any row was
/// null), then each aggregate's state (partial) or value (single), in batches of the
/// session's batch size. Like the tables of strings, its accumulators are not counted by
/// DataFusion's memory pool: it never emits early or spills (capq sets no memory limit),
/// and `EXPLAIN ANALYZE` shows none of its metrics.
#[derive(Debug)]
pub struct DenseAggExec {
    /// Its input, `column` still strings: it keys them itself, straight into group
    /// indices (a [`KeysExec`] in front of it took two more passes over the rows, 21% of
    /// the path group-by's time).
    input: Arc<dyn ExecutionPlan>,
    column: usize,
    agg: Arc<AggParts>,
    /// Each aggregate's arguments, as DataFusion evaluates them for its mode.
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    /// The replaced aggregation's: the same schema, partitioning and equivalences.
    props: Arc<PlanProperties>,
    /// The keys' one table of strings.
    tables: Arc<Vec<Mutex<Strings>>>,
}

impl DisplayAs for DenseAggExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "capq DenseAggExec: keys of column {} as group indices", self.column)
    }
}

impl ExecutionPlan for DenseAggExec {
    plan_basics!("DenseAggExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(DenseAggExec {
            input: children.swap_remove(0),
            column: self.column,
            agg: self.agg.clone(),
            args: self.args.clone(),
            props: self.props.clone(),
            tables: self.tables.clone(),
        }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, context.clone())?;
        let mut accs: Vec<Box<dyn GroupsAccumulator>> =
            self.agg.aggr.iter().map(|a| a.create_groups_accumulator()).collect::<Result<_>>()?;
        let (agg, args, tables, column) = (self.agg.clone(), self.args.clone(), self.tables.clone(), self.column);
        let schema = self.schema();
        let out = schema.clone();
        let batch_size = context.session_config().batch_size().max(1);
        let run = async move {
            let mut groups: Vec<usize> = Vec::new();
            let (mut views, mut dict) = (ViewKeys::new(), DictKeys::default());
            let mut constants: Vec<Vec<Option<ArrayRef>>> = args.iter().map(|a| vec![None; a.len()]).collect();
            let (mut total, mut nulls) = (0, false);
            while let Some(b) = input.next().await {
                let b = b?;
                let col = b.column(column);
                groups.clear();
                if let Some(d) = col.as_dictionary_opt::<Int32Type>() {
                    nulls |= dict.groups(d, &tables[0], &mut groups)?;
                } else {
                    let strings = col.as_string_view_opt().ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "DenseAggExec: column {column} is not of string views or a dictionary"
                        ))
                    })?;
                    let keys = views.keys(strings, &tables[0])?;
                    let keys = keys.as_primitive::<UInt32Type>();
                    match keys.nulls().filter(|n| n.null_count() > 0) {
                        None => groups.extend(keys.values().iter().map(|&k| k as usize + 1)),
                        Some(n) => {
                            nulls = true;
                            groups.extend(
                                keys.values().iter().zip(n.iter()).map(|(&k, v)| if v { k as usize + 1 } else { 0 }),
                            );
                        }
                    }
                }
                total = tables[0].lock().map_err(|_| poisoned())?.len() + 1;
                let values = evaluate_args(&args, &b, &mut constants)?;
                for ((acc, values), filter) in accs.iter_mut().zip(&values).zip(&agg.filter) {
                    let filter =
                        filter.as_ref().map(|f| f.evaluate(&b).and_then(|v| v.into_array(b.num_rows()))).transpose()?;
                    acc.update_batch(values, &groups, filter.as_ref().map(|f| f.as_boolean()), total)?;
                }
            }
            if total == 0 {
                return Ok(futures::stream::iter(Vec::new()));
            }
            let t = tables[0].lock().map_err(|_| poisoned())?;
            if t.len() + 1 != total {
                return Err(DataFusionError::Internal("DenseAggExec: keys made after the last batch".into()));
            }
            let mut strings = StringViewBuilder::with_capacity(total);
            strings.append_null();
            for k in 0..t.len() as u32 {
                strings.append_value(
                    t.get(k).ok_or_else(|| DataFusionError::Internal(format!("group key {k} has no string")))?,
                );
            }
            drop(t);
            let mut cols: Vec<ArrayRef> = vec![Arc::new(strings.finish())];
            for acc in &mut accs {
                if agg.mode == AggregateMode::Single {
                    cols.push(acc.evaluate(EmitTo::All)?);
                } else {
                    cols.extend(acc.state(EmitTo::All)?);
                }
            }
            // Group 0 is the null group: only kept if a row was null.
            let first = usize::from(!nulls);
            let batches: Vec<Result<RecordBatch>> = (first..total)
                .step_by(batch_size)
                .map(|at| {
                    let n = batch_size.min(total - at);
                    Ok(RecordBatch::try_new(out.clone(), cols.iter().map(|c| c.slice(at, n)).collect())?)
                })
                .collect();
            Ok(futures::stream::iter(batches))
        };
        let stream = futures::stream::once(run).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The aggregation's output with its key columns (at `positions`, each with its table of
/// strings in `tables`) turned back into strings.
#[derive(Debug)]
pub struct StringsExec {
    input: Arc<dyn ExecutionPlan>,
    /// The replaced aggregation's: the same schema, partitioning and equivalences.
    props: Arc<PlanProperties>,
    tables: Arc<Vec<Mutex<Strings>>>,
    positions: Vec<usize>,
}

impl DisplayAs for StringsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "capq StringsExec: keys as {}", names(self.props.eq_properties.schema(), &self.positions))
    }
}

impl ExecutionPlan for StringsExec {
    plan_basics!("StringsExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(StringsExec {
            input: children.swap_remove(0),
            props: self.props.clone(),
            tables: self.tables.clone(),
            positions: self.positions.clone(),
        }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (tables, positions) = (self.tables.clone(), self.positions.clone());
        let schema = self.schema();
        let out = schema.clone();
        let stream = input.map(move |b| {
            let b = b?;
            let mut cols = b.columns().to_vec();
            for (&p, table) in positions.iter().zip(tables.iter()) {
                let keys = b
                    .column(p)
                    .as_primitive_opt::<datafusion::arrow::datatypes::UInt32Type>()
                    .ok_or_else(|| DataFusionError::Internal(format!("StringsExec: column {p} is not of keys")))?;
                let t = table.lock().map_err(|_| poisoned())?;
                let mut s = StringViewBuilder::with_capacity(keys.len());
                for k in keys.iter() {
                    match k {
                        Some(k) => s.append_value(
                            t.get(k)
                                .ok_or_else(|| DataFusionError::Internal(format!("group key {k} has no string")))?,
                        ),
                        None => s.append_null(),
                    }
                }
                cols[p] = Arc::new(s.finish());
            }
            Ok(RecordBatch::try_new(out.clone(), cols)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringViewArray};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Strings as a dictionary page gives them (each distinct string once in the buffer,
    /// rows sharing views) or as a plain page does (every row its own copy), with nulls,
    /// short (inline) and long strings.
    fn strings(n: usize, seed: usize, shared: bool) -> StringViewArray {
        let mut b = StringViewBuilder::new();
        if shared {
            b = b.with_deduplicate_strings();
        }
        for i in 0..n {
            let r = (i * 7919 + seed * 104_729) % 1000;
            match r % 10 {
                0 => b.append_null(),
                1..=2 => b.append_value(format!("short{}", r % 13)),
                _ => b.append_value(format!("/home/alice/src/project/file-{}.rs", r % 97)),
            }
        }
        b.finish()
    }

    /// `count` batches of `n` rows: slices of one array when `shared` (as batches decoded
    /// from one dictionary page share its buffer), else each made on its own.
    fn batches(count: usize, n: usize, seed: usize, shared: bool) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("s", DataType::Utf8View, true),
            Field::new("u", DataType::Utf8View, true),
            Field::new("w", DataType::Utf8View, true),
            Field::new("v", DataType::Utf8View, true),
        ]));
        let one = |len: usize, seed: usize| -> RecordBatch {
            let x = Int64Array::from_iter_values((0..len as i64).map(|i| i * 3 + seed as i64));
            let (s, u) = (strings(len, seed, shared), strings(len, seed * 31 + 17, shared));
            // Short strings only, no nulls: keyed only where the keys are group indices.
            let w = StringViewArray::from_iter_values((0..len).map(|i| format!("w{}", (i + seed) % 17)));
            // Short strings of 9,990 values, nearly every row of a batch its own: never keyed.
            let v = StringViewArray::from_iter_values((0..len).map(|i| format!("v{}", (i * 7 + seed) % 9990)));
            let columns: Vec<ArrayRef> = vec![Arc::new(x), Arc::new(s), Arc::new(u), Arc::new(w), Arc::new(v)];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        };
        if shared {
            let all = one(count * n, seed);
            (0..count).map(|i| all.slice(i * n, n)).collect()
        } else {
            (0..count).map(|i| one(n, seed + i)).collect()
        }
    }

    fn ctx(rule: bool, partitions: Vec<Vec<RecordBatch>>) -> SessionContext {
        ctx_with(rule, partitions, false, 8192)
    }

    /// With `skip`, partial aggregations give up grouping after 10 rows and pass rows on.
    /// And output batches of `batch` rows.
    fn ctx_with(rule: bool, partitions: Vec<Vec<RecordBatch>>, skip: bool, batch: usize) -> SessionContext {
        let mut config = SessionConfig::new().with_target_partitions(partitions.len().max(1)).with_batch_size(batch);
        if skip {
            let e = &mut config.options_mut().execution;
            e.skip_partial_aggregation_probe_rows_threshold = 10;
            e.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        }
        let mut b = SessionStateBuilder::new().with_config(config).with_default_features();
        if rule {
            b = b.with_physical_optimizer_rule(Arc::new(StringGroupKeys::default()));
        }
        let ctx = SessionContext::new_with_state(b.build());
        let schema = partitions[0][0].schema();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, partitions).unwrap())).unwrap();
        ctx
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string()
    }

    async fn plan(ctx: &SessionContext, sql: &str) -> String {
        rows(ctx, &format!("EXPLAIN {sql}")).await
    }

    #[tokio::test]
    async fn answers_as_datafusion_does() {
        // Two partitions whose batches share buffers, then change them (the keyed plan);
        // one whose batches do not (DataFusion's plan).
        let shared = vec![
            [batches(3, 2000, 1, true), batches(2, 3000, 2, true)].concat(),
            [batches(4, 1500, 3, true), batches(1, 100, 4, false), batches(2, 700, 5, true)].concat(),
        ];
        let plain = vec![batches(3, 2000, 6, false), batches(2, 1000, 7, false)];
        // Each with whether its aggregation over `s` reads the table's batches as they are:
        // a filter's output is copied into new buffers when it is coalesced, and the
        // distinct counts group the output of a first aggregation, so there DataFusion's
        // plan runs either way.
        // Each with what EXPLAIN ANALYZE says of its aggregation over the table's batches
        // (None: not read as they are, where a filter's output is copied into new buffers
        // when it is coalesced, or a distinct count groups a first aggregation's output):
        // over shared and over plain batches, of 2 partitions, how many ran keyed and how
        // many of those on the keys as group indices.
        type Says = Option<[(usize, usize); 2]>;
        const DENSE: Says = Some([(2, 2), (0, 0)]);
        const KEYED: Says = Some([(2, 0), (0, 0)]);
        let queries: &[(&str, Says)] = &[
            ("SELECT s, count(*) AS n, sum(x) AS x, min(x) AS lo FROM t GROUP BY s ORDER BY s", DENSE),
            ("SELECT s FROM t GROUP BY s ORDER BY s", DENSE),
            // Two state columns (avg's sum and count) from a partial aggregation.
            ("SELECT s, avg(x) AS a, count(x) AS c, max(x) AS m FROM t GROUP BY s ORDER BY s", DENSE),
            // Short strings without nulls: their views hold the bytes, so plain batches
            // key too.
            ("SELECT w, count(*) AS n, sum(x) AS x FROM t GROUP BY w ORDER BY w", Some([(2, 2); 2])),
            // Short strings that seldom repeat.
            ("SELECT v, count(*) AS n FROM t GROUP BY v ORDER BY v", Some([(0, 0); 2])),
            // Two distinct counts on different arguments: count(DISTINCT)'s own groups
            // accumulator, in a partial aggregation.
            ("SELECT s, count(DISTINCT x) AS a, count(DISTINCT x % 3) AS b FROM t GROUP BY s ORDER BY s", DENSE),
            // Two string columns keyed, and one beside a number.
            ("SELECT u, s, count(*) AS n, max(x) AS m FROM t GROUP BY s, u ORDER BY u, s", KEYED),
            ("SELECT x % 7 AS k, s, count(*) AS n FROM t GROUP BY s, x % 7 ORDER BY k, s", KEYED),
            // Grouped by (u, s) first, both keyed, then by u.
            ("SELECT u, count(DISTINCT s) AS d, max(x) AS m FROM t GROUP BY u ORDER BY u", KEYED),
            // Only s keyed, the second of three group columns; an aggregate's FILTER on x.
            ("SELECT w, s, x % 3 AS k, count(*) AS n FROM t GROUP BY w, s, x % 3 ORDER BY w, s, k", KEYED),
            ("SELECT s, count(*) FILTER (WHERE x > 500) AS n FROM t GROUP BY s ORDER BY s", DENSE),
            ("SELECT s, count(*) AS n FROM t WHERE x % 2 = 0 GROUP BY s ORDER BY n DESC, s LIMIT 5", None),
            ("SELECT s, count(DISTINCT x % 10) AS d FROM t GROUP BY s ORDER BY s", None),
            // Rewritten by DataFusion into a group-by on (s, s), then on s.
            ("SELECT s, count(DISTINCT s) AS d FROM t GROUP BY s ORDER BY s", None),
        ];
        let runs = [(shared.clone(), false, 0), (shared, true, 0), (plain, false, 1)];
        for (parts, skip, which) in runs {
            let with = ctx_with(true, parts.clone(), skip, 8192);
            let without = ctx_with(false, parts, skip, 8192);
            for &(sql, says) in queries {
                assert!(plan(&with, sql).await.contains("StringGroupBy"), "{sql}");
                assert!(!plan(&without, sql).await.contains("StringGroupBy"));
                assert_eq!(rows(&with, sql).await, rows(&without, sql).await, "{sql}");
                if let Some(says) = says {
                    let (keyed, dense) = says[which];
                    let p = plan(&with, &format!("ANALYZE {sql}")).await;
                    let said = format!("keyed in {keyed} of 2 partitions ({dense} with");
                    assert!(p.contains(&said), "{sql}: {p}");
                }
            }
        }
        // One partition: single-mode aggregations, emitting in batches of 100 rows (of more groups).
        let one = vec![[batches(2, 5000, 8, true), batches(2, 2000, 9, true)].concat()];
        let (a, b) = (ctx_with(true, one.clone(), false, 100), ctx_with(false, one, false, 100));
        for &(sql, says) in queries {
            if let Some(says) = says {
                let (keyed, dense) = says[0];
                let p = plan(&a, &format!("ANALYZE {sql}")).await;
                let said = format!("keyed in {} of 1 partitions ({} with", keyed.min(1), dense.min(1));
                assert!(p.contains(&said), "{sql}: {p}");
            }
            assert_eq!(rows(&a, sql).await, rows(&b, sql).await, "{sql}");
        }
    }

    /// Views made by hand, as any `StringViewArray` may hold them: a string and its prefix
    /// at one place, one string at two places, short strings, nulls; then other strings
    /// in new buffers under the same views. Every key names the row's own string.
    #[test]
    fn keys_name_the_strings_their_views_point_at() {
        use datafusion::arrow::array::ByteView;
        use datafusion::arrow::buffer::NullBuffer;
        let table = Mutex::new(Strings::new());
        let mut cache = ViewKeys::new();
        let check = |cache: &mut ViewKeys, text: &str| {
            let bytes = text.as_bytes();
            let long = |off: usize, len: usize| {
                ByteView::new(len as u32, &bytes[off..off + 4]).with_buffer_index(0).with_offset(off as u32).as_u128()
            };
            let short = |s: &str| {
                let mut v = [0u8; 16];
                v[..4].copy_from_slice(&(s.len() as u32).to_le_bytes());
                v[4..4 + s.len()].copy_from_slice(s.as_bytes());
                u128::from_le_bytes(v)
            };
            // Repeated so that most views of the batch are known ones (no direct mode).
            let pattern = [long(0, 25), long(0, 16), long(25, 25), short("ls"), long(0, 25), 0, long(25, 25)];
            let views: Vec<u128> = pattern.iter().copied().cycle().take(70).collect();
            let nulls = NullBuffer::from_iter(views.iter().map(|&v| v != 0));
            let col =
                StringViewArray::try_new(ScalarBuffer::from(views), vec![Buffer::from(bytes)], Some(nulls)).unwrap();
            let keys = cache.keys(&col, &table).unwrap();
            let keys = keys.as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
            let t = table.lock().unwrap();
            for i in 0..col.len() {
                assert_eq!(col.is_valid(i), keys.is_valid(i), "row {i}");
                if col.is_valid(i) {
                    assert_eq!(t.get(keys.value(i)), Some(col.value(i)), "row {i}");
                }
            }
        };
        let a = "/usr/lib/x86_64/libc.so.6/usr/lib/x86_64/libc.so.6";
        check(&mut cache, a);
        check(&mut cache, a);
        // The same views (length, first four bytes, place) over other strings.
        check(&mut cache, "/usr/lib/x86_64/libm.so.6/usr/lib/x86_64/libz.so.1");
        check(&mut cache, a);
    }

    #[tokio::test]
    async fn leaves_plans_it_cannot_key() {
        let c = ctx(true, vec![batches(2, 1000, 1, true), batches(2, 1000, 2, true)]);
        for sql in [
            // The group column read by an aggregate; an expression.
            "SELECT s, max(s) FROM t GROUP BY s",
            "SELECT s, string_agg(s, ',') FROM t GROUP BY s",
            // An aggregate that needs its input ordered; one ordered by the group column;
            // a FILTER on it.
            "SELECT s, array_agg(x ORDER BY x) FROM t GROUP BY s",
            "SELECT s, first_value(x ORDER BY s) FROM t GROUP BY s",
            "SELECT s, count(*) FILTER (WHERE s > 'm') FROM t GROUP BY s",
            // The group column read by another group expression.
            "SELECT s, x + length(s) AS l, count(*) FROM t GROUP BY s, x + length(s)",
            "SELECT s || '' AS s2, count(*) FROM t GROUP BY s2",
            "SELECT x, count(*) FROM t GROUP BY x",
        ] {
            assert!(!plan(&c, sql).await.contains("StringGroupBy"), "{sql}");
        }
    }
}
