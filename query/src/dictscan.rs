//! Reading a string column as a dictionary where only capq's own nodes consume it.
//!
//! The recorder writes its string columns dictionary-encoded, and the Parquet reader can
//! hand a column chunk over as `Dictionary(Int32, Utf8)`: the chunk's dictionary page
//! once (shared by every batch of the chunk) and a 4-byte index per row, where views
//! (what capq reads strings as elsewhere: catalog::view_types) copy a 16-byte view per
//! row out of that dictionary. DataFusion's own operators handle dictionaries slower than
//! views (its group-by hashes them through the row format: README, Queries), so a plan
//! gets them only for the columns that go straight from the scan into a node of capq's
//! that uses their dictionary indices: a group-by's keys ([`crate::groupkeys`]) and
//! `=` / `<>` in a filter ([`crate::viewcmp`]).
//!
//! The reader takes the type from a schema given per file, which must be that file's own
//! (field metadata included): [`FileSchemas`] keeps each segment's, as the catalog read
//! it from the footer. A scan with a file not there keeps its views. The same per-file
//! schemas have the reader make lists of strings as lists of views ([`ViewLists`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::{collect_columns, conjunction_opt as conjunction, split_conjunction};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::retyped as retyped_type;

/// Each segment's own Arrow schema and the columns it holds only dictionary-encoded, by
/// its object-store path (what DataFusion's listing names the file by:
/// `ListingTableUrl::prefix`).
#[derive(Debug, Default, Clone)]
pub struct FileSchemas(Arc<Mutex<Files>>);

#[derive(Debug, Default)]
struct Files {
    by_path: HashMap<String, (SchemaRef, Arc<Vec<String>>)>,
    /// One of each schema (without the schema's own metadata, which holds each segment's
    /// times and which the reader does not compare): files share them.
    distinct: Vec<SchemaRef>,
}

impl FileSchemas {
    pub fn insert(&self, location: String, schema: &Schema, dictionary: Vec<String>) {
        let mut files = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let schema = match files.distinct.iter().find(|s| s.fields() == schema.fields()) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(Schema::new(schema.fields().clone()));
                files.distinct.push(s.clone());
                s
            }
        };
        files.by_path.insert(location, (schema, Arc::new(dictionary)));
    }

    fn get(&self, location: &str) -> Option<(SchemaRef, Arc<Vec<String>>)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).by_path.get(location).cloned()
    }
}

/// The rule that has the reader make lists of strings as lists of views (the table's
/// type for them: catalog::view_types), in every Parquet scan of capq's segments that
/// reads one and that no rule gave its files' schemas already: DataFusion tells the
/// reader to make views of top-level strings only, so the items of `argv` were copied out
/// of the dictionary page one by one and then cast to views.
#[derive(Debug, Default)]
pub struct ViewLists {
    pub files: FileSchemas,
}

impl PhysicalOptimizerRule for ViewLists {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(scan) = node.downcast_ref::<DataSourceExec>() else { return Ok(Transformed::no(node)) };
            let lists = node
                .schema()
                .fields()
                .iter()
                .any(|f| matches!(f.data_type(), DataType::List(item) if item.data_type() == &DataType::Utf8View));
            let told = scan
                .data_source()
                .downcast_ref::<FileScanConfig>()
                .is_some_and(|c| c.file_groups.iter().flat_map(|g| g.iter()).any(|f| f.arrow_schema.is_some()));
            if !lists || told {
                return Ok(Transformed::no(node));
            }
            Ok(match retype_scan(scan, &[], &self.files)? {
                Some(new) => {
                    log::debug!("a scan reads its lists of strings as lists of views");
                    Transformed::yes(new)
                }
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "capq_view_lists"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What a column read as a dictionary is.
pub fn dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// `plan` with its output columns `columns` (all `Utf8View`) read as [`dictionary`]s, or
/// `None` where that cannot be done: each column must come from a Parquet scan's file
/// column through filters, projections of bare columns, unions and repartitions (whose
/// filters and projections do not read it), and every file must have its schema in
/// `files` and hold the column dictionary-encoded only (a plain page read as a dictionary
/// is hashed a row at a time into one, for each batch).
pub fn retype(
    plan: &Arc<dyn ExecutionPlan>,
    columns: &[usize],
    files: &FileSchemas,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let new: Option<Arc<dyn ExecutionPlan>> = if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        retype_scan(scan, columns, files)?
    } else if let Some(u) = plan.downcast_ref::<UnionExec>() {
        let mut children = Vec::with_capacity(u.children().len());
        for c in u.children() {
            match retype(c, columns, files)? {
                Some(c) => children.push(c),
                None => return Ok(None),
            }
        }
        #[allow(deprecated)] // replace_children would need options that say the same
        Some(plan.clone().with_new_children(children)?)
    } else if let Some(f) = plan.downcast_ref::<FilterExec>() {
        let below: Vec<usize> = match f.projection() {
            Some(p) => match columns.iter().map(|&c| p.get(c).copied()).collect() {
                Some(b) => b,
                None => return Ok(None),
            },
            None => columns.to_vec(),
        };
        if collect_columns(f.predicate()).iter().any(|c| below.contains(&c.index())) {
            return Ok(None);
        }
        one_child(plan, f.input(), &below, files)?
    } else if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        let below: Option<Vec<usize>> = columns
            .iter()
            .map(|&c| p.expr().get(c).and_then(|e| e.expr.downcast_ref::<Column>()).map(Column::index))
            .collect();
        // A column projected twice would be read as a dictionary where the other copy goes.
        match below {
            Some(b) if p.expr().iter().filter(|e| read_by(&e.expr, &b)).count() == b.len() => {
                one_child(plan, p.input(), &b, files)?
            }
            _ => None,
        }
    } else if let Some(r) = plan.downcast_ref::<RepartitionExec>() {
        one_child(plan, r.input(), columns, files)?
    } else {
        None
    };
    Ok(new.filter(|p| columns.iter().all(|&c| p.schema().field(c).data_type() == &dictionary())))
}

fn read_by(e: &Arc<dyn PhysicalExpr>, columns: &[usize]) -> bool {
    collect_columns(e).iter().any(|c| columns.contains(&c.index()))
}

fn one_child(
    plan: &Arc<dyn ExecutionPlan>,
    input: &Arc<dyn ExecutionPlan>,
    columns: &[usize],
    files: &FileSchemas,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    match retype(input, columns, files)? {
        #[allow(deprecated)] // as above
        Some(c) => Ok(Some(plan.clone().with_new_children(vec![c])?)),
        None => Ok(None),
    }
}

/// A Parquet scan like `scan`, its output columns `columns` read as dictionaries and its
/// files told their own schemas (with the table's lists of views); with no columns, the
/// same scan with its files told.
fn retype_scan(
    scan: &DataSourceExec,
    columns: &[usize],
    files: &FileSchemas,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else { return Ok(None) };
    let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else { return Ok(None) };
    let Some(projection) = source.projection() else { return Ok(None) };
    let table = source.table_schema();
    if !table.virtual_columns().is_empty() {
        return Ok(None);
    }
    let file_schema = table.file_schema();
    // The file columns the output columns are, by name.
    let mut names = Vec::with_capacity(columns.len());
    for &c in columns {
        let Some(e) = projection.as_ref().get(c) else { return Ok(None) };
        let Some(col) = e.expr.downcast_ref::<Column>() else { return Ok(None) };
        match file_schema.fields().get(col.index()) {
            Some(f) if f.name() == col.name() && f.data_type() == &DataType::Utf8View => names.push(f.name().clone()),
            _ => return Ok(None),
        }
    }
    // Read by the projection elsewhere: not for capq's nodes alone.
    let reads = |e: &Arc<dyn PhysicalExpr>| collect_columns(e).iter().any(|c| names.iter().any(|n| n == c.name()));
    if projection.as_ref().iter().filter(|e| reads(&e.expr)).count() != names.len() {
        return Ok(None);
    }
    // The scan's own filter: where it filters rows (pushed down), it must not read them;
    // where it only prunes row groups and pages (the filter above it decides), the parts
    // that read them are left out (capq's segments keep no statistics on strings).
    let options = source.table_parquet_options().clone();
    let filter = match source.filter() {
        Some(f) if reads(&f) && options.global.pushdown_filters => return Ok(None),
        Some(f) => conjunction(split_conjunction(&f).into_iter().filter(|e| !reads(e)).cloned()),
        None => None,
    };
    // With those a rule read as dictionaries before (a group-by's under a filter's).
    let before = file_schema.fields().iter().filter(|f| f.data_type() == &dictionary()).map(|f| f.name().clone());
    let names: Vec<String> = names.iter().cloned().chain(before).collect();
    // The lists the table has as lists of views (catalog::view_types; a table made with
    // CREATE EXTERNAL TABLE has them as DataFusion reads them, lists of strings).
    let view_lists: Vec<&String> = file_schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::List(i) if i.data_type() == &DataType::Utf8View))
        .map(|f| f.name())
        .collect();
    let retyped = |s: &Schema| -> Option<SchemaRef> {
        let fields: Vec<Field> = s
            .fields()
            .iter()
            .map(|f| {
                let f = f.as_ref().clone();
                if names.contains(f.name()) {
                    let ok =
                        matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View) || f.data_type() == &dictionary();
                    ok.then(|| f.with_data_type(dictionary()))
                } else if let (true, Some(t)) =
                    (view_lists.contains(&f.name()), retyped_type(f.data_type(), &DataType::Utf8, &DataType::Utf8View))
                {
                    // A list of strings as a list of views, as the table has it.
                    Some(f.with_data_type(t))
                } else {
                    Some(f)
                }
            })
            .collect::<Option<_>>()?;
        Some(Arc::new(Schema::new_with_metadata(fields, s.metadata().clone())))
    };
    let Some(new_file_schema) = retyped(file_schema) else { return Ok(None) };
    // Each file read with its own schema, those columns as dictionaries.
    let mut hints: Vec<(SchemaRef, SchemaRef)> = Vec::new();
    let mut groups = Vec::with_capacity(config.file_groups.len());
    for g in &config.file_groups {
        let mut out = Vec::with_capacity(g.len());
        for pf in g.iter() {
            let Some((own, encoded)) = files.get(pf.object_meta.location.as_ref()) else { return Ok(None) };
            // A column the file lacks reads as nulls.
            if !names.iter().all(|n| encoded.contains(n) || own.field_with_name(n).is_err()) {
                return Ok(None);
            }
            let hint = match hints.iter().find(|(s, _)| Arc::ptr_eq(s, &own)) {
                Some((_, h)) => h.clone(),
                None => {
                    let Some(h) = retyped(&own) else { return Ok(None) };
                    hints.push((own, h.clone()));
                    h
                }
            };
            out.push(pf.clone().with_arrow_schema(hint));
        }
        let mut group = FileGroup::new(out);
        if let Some(s) = g.file_statistics(None) {
            group = group.with_statistics(Arc::new(s.clone()));
        }
        groups.push(group);
    }
    if names.is_empty() {
        // Only the lists' hints (ViewLists): the scan as it was, its files told.
        let mut config = config.clone();
        config.file_groups = groups;
        return Ok(Some(DataSourceExec::from_data_source(config)));
    }
    let hint = options.global.metadata_size_hint;
    let table =
        TableSchema::builder(new_file_schema).with_table_partition_cols(table.table_partition_cols().to_vec()).build();
    let mut new = ParquetSource::new(table).with_table_parquet_options(options);
    if let Some(h) = hint {
        new = new.with_metadata_size_hint(h);
    }
    if let Some(f) = source.parquet_file_reader_factory() {
        new = new.with_parquet_file_reader_factory(f.clone());
    }
    if let Some(p) = filter {
        new = new.with_predicate(p);
    }
    let Some(new) = new.try_pushdown_projection(projection)? else { return Ok(None) };
    let mut config = config.clone();
    config.file_source = new;
    config.file_groups = groups;
    Ok(Some(DataSourceExec::from_data_source(config)))
}
