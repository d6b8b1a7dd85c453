//! Writing query results: an aligned table for people, CSV, NDJSON, or Parquet.

use std::io::{self, Write};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};

/// Output format of `capq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table (long cells are cut; use csv or json for whole values).
    #[default]
    Table,
    /// CSV with a header row; lists are written as [a, b, c].
    Csv,
    /// Newline-delimited JSON, one object per row; lists stay JSON arrays.
    Json,
    /// A Parquet file (needs --output).
    Parquet,
}

fn io_err(e: io::Error) -> DataFusionError {
    DataFusionError::IoError(e)
}

fn formatter_options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("").with_display_error(true)
}

/// Whether CSV takes a column as it is: not nested (lists), not bytes (BLOB, as hex).
fn csv_scalar(t: &DataType) -> bool {
    !t.is_nested() && !matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
}

/// Replaces nested columns (lists) and bytes by their text form, for formats that only
/// take scalars.
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch> {
    if batch.schema().fields().iter().all(|f| csv_scalar(f.data_type())) {
        return Ok(batch.clone());
    }
    let opts = formatter_options();
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if !csv_scalar(f.data_type()) {
            let fmt = ArrayFormatter::try_new(c.as_ref(), &opts)?;
            let strings: StringArray =
                (0..c.len()).map(|i| if c.is_null(i) { None } else { Some(fmt.value(i).to_string()) }).collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(strings));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// `schema` with string views as plain strings: a Parquet file capq writes carries
/// `Utf8` in its Arrow schema, as the capture's own segments do, for readers that predate
/// views (capq reads strings as views: catalog::view_types).
pub fn plain_strings(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema.fields().iter().map(|f| plain_field(f)).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `f` with its string views plain strings, at any depth of lists and structs (`argv`,
/// `array_agg(argv)`, `named_struct(...)`).
fn plain_field(f: &Field) -> Field {
    let t = match f.data_type() {
        DataType::Utf8View => DataType::Utf8,
        DataType::List(i) => DataType::List(Arc::new(plain_field(i))),
        DataType::LargeList(i) => DataType::LargeList(Arc::new(plain_field(i))),
        DataType::FixedSizeList(i, n) => DataType::FixedSizeList(Arc::new(plain_field(i)), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| plain_field(f)).collect()),
        t => t.clone(),
    };
    f.clone().with_data_type(t)
}

/// `batch` cast to `schema` (from `plain_strings`).
pub fn to_plain(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Cuts a cell to `max` characters, marking the cut with an ellipsis.
fn cut(s: &str, max: usize) -> String {
    let one_line: String = s.chars().map(|c| if c == '\n' || c == '\t' { ' ' } else { c }).collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Writes batches as an aligned table with a header; cells longer than `max_cell` are cut.
pub fn write_table(out: &mut dyn Write, schema: &SchemaRef, batches: &[RecordBatch], max_cell: usize) -> Result<()> {
    let opts = formatter_options();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<_, _>>()?;
        for i in 0..b.num_rows() {
            rows.push(fmts.iter().map(|f| cut(&f.value(i).to_string(), max_cell)).collect());
        }
    }
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write| -> io::Result<()> {
        let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        writeln!(out, "+{}+", parts.join("+"))
    };
    let row = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let parts: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count()))).collect();
        writeln!(out, "|{}|", parts.join("|"))
    };
    line(out).map_err(io_err)?;
    row(out, &names).map_err(io_err)?;
    line(out).map_err(io_err)?;
    for r in &rows {
        row(out, r).map_err(io_err)?;
    }
    line(out).map_err(io_err)?;
    let n = rows.len();
    writeln!(out, "{n} row{}", if n == 1 { "" } else { "s" }).map_err(io_err)?;
    Ok(())
}

/// Streams batches in one of the scalar formats.
#[allow(clippy::large_enum_variant)] // one per query, on the stack
pub enum StreamWriter<'a> {
    Csv(datafusion::arrow::csv::Writer<&'a mut dyn Write>),
    Json(datafusion::arrow::json::LineDelimitedWriter<&'a mut dyn Write>),
}

impl<'a> StreamWriter<'a> {
    pub fn csv(out: &'a mut dyn Write) -> StreamWriter<'a> {
        StreamWriter::Csv(
            datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.6fZ".to_string())
                .build(out),
        )
    }

    pub fn json(out: &'a mut dyn Write) -> StreamWriter<'a> {
        StreamWriter::Json(datafusion::arrow::json::WriterBuilder::new().with_explicit_nulls(true).build(out))
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            StreamWriter::Csv(w) => w.write(&flatten_nested(batch)?)?,
            StreamWriter::Json(w) => w.write(batch)?,
        }
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        match self {
            StreamWriter::Csv(w) => {
                w.into_inner().flush().map_err(io_err)?;
            }
            StreamWriter::Json(mut w) => {
                w.finish()?;
                w.into_inner().flush().map_err(io_err)?;
            }
        }
        Ok(())
    }
}
