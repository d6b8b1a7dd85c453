//! A Parquet file written from Arrow batches, as `parquet::arrow::ArrowWriter` writes it,
//! except that the integer columns (required with a dictionary; required or nullable PLAIN
//! or delta-encoded) are encoded by [`crate::intcol`], the string columns with a
//! dictionary by [`crate::strcol`] and the required booleans by [`crate::boolcol`]; every
//! other column by parquet's own Arrow column writers.
//!
//! The row group is buffered in memory (each column's compressed pages and its dictionary)
//! until it has `max_row_group_row_count` rows, then written whole.

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{KeyValue, RowGroupMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::boolcol::{self, BoolColumn};
use crate::intcol::{self, IntColumn};
use crate::strcol::{self, StrColumn};

/// How one column of the row group is being encoded.
enum Lane {
    Parquet(Box<ArrowColumnWriter>),
    Int(Box<IntColumn>),
    Str(Box<StrColumn>),
    Bool(Box<BoolColumn>),
}

/// Which encoder a column has.
#[derive(Clone, Copy, PartialEq)]
enum Own {
    Parquet,
    Int,
    Str,
    Bool,
}

pub struct SegmentFile {
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// Per column (the tables' columns are all leaves: one Parquet column each), its
    /// encoder.
    own: Vec<Own>,
    props: Arc<WriterProperties>,
    lanes: Option<Vec<Lane>>,
    /// Our encoders between row groups, kept (their tables stay sized).
    spare: Vec<Option<Lane>>,
    rows: usize,
    max_rows: usize,
    seed: u64,
}

impl SegmentFile {
    pub fn try_new(file: File, schema: SchemaRef, props: WriterProperties) -> Result<SegmentFile> {
        let mut props = props;
        let parquet_schema = ArrowSchemaConverter::new().with_coerce_types(props.coerce_types()).convert(&schema)?;
        add_encoded_arrow_schema_to_metadata(&schema, &mut props);
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let props = Arc::new(props);
        let writer = SerializedFileWriter::new(file, parquet_schema.root_schema_ptr(), props.clone())?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, schema.clone());
        let columns = writer.schema_descr().columns();
        if columns.len() != schema.fields().len() {
            return Err(ParquetError::General(format!(
                "{} Parquet columns for {} Arrow fields: nested columns are not written here",
                columns.len(),
                schema.fields().len()
            )));
        }
        let own: Vec<Own> = columns
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                if intcol::handles(c, f.data_type(), &props) {
                    Own::Int
                } else if strcol::handles(c, f.data_type(), &props) {
                    Own::Str
                } else if boolcol::handles(c, f.data_type(), &props) {
                    Own::Bool
                } else {
                    Own::Parquet
                }
            })
            .collect();
        // Random per process, as std's hash maps are seeded.
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        };
        let spare = own.iter().map(|_| None).collect();
        Ok(SegmentFile { writer, factory, schema, own, props, lanes: None, spare, rows: 0, max_rows, seed })
    }

    fn start_row_group(&mut self) -> Result<Vec<Lane>> {
        let parquet = self.factory.create_column_writers(self.writer.flushed_row_groups().len())?;
        let columns = self.writer.schema_descr().columns();
        let mut lanes = Vec::with_capacity(parquet.len());
        for (i, w) in parquet.into_iter().enumerate() {
            let descr = columns[i].clone();
            lanes.push(match (self.own[i], self.spare[i].take()) {
                (Own::Parquet, _) => Lane::Parquet(Box::new(w)),
                (_, Some(lane)) => lane,
                (Own::Int, None) => Lane::Int(Box::new(IntColumn::new(descr, &self.props, self.seed)?)),
                (Own::Str, None) => Lane::Str(Box::new(StrColumn::new(descr, &self.props)?)),
                (Own::Bool, None) => Lane::Bool(Box::new(BoolColumn::new(descr, &self.props)?)),
            });
        }
        Ok(lanes)
    }

    /// Encodes `batch`, writing a row group each time one fills.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(ParquetError::General("record batch schema does not match the segment's".into()));
        }
        let room = self.max_rows - self.rows;
        if batch.num_rows() > room {
            self.write(&batch.slice(0, room))?;
            return self.write(&batch.slice(room, batch.num_rows() - room));
        }
        if self.lanes.is_none() {
            self.lanes = Some(self.start_row_group()?);
        }
        let lanes = self.lanes.as_mut().expect("started above");
        for ((lane, field), col) in lanes.iter_mut().zip(self.schema.fields()).zip(batch.columns()) {
            match lane {
                Lane::Parquet(w) => {
                    for leaf in compute_leaves(field, col)? {
                        w.write(&leaf)?;
                    }
                }
                Lane::Int(c) => match col.data_type() {
                    DataType::Int32 => c.write_i32(col.as_primitive::<Int32Type>().values(), col.nulls())?,
                    DataType::Int64 => c.write_i64(col.as_primitive::<Int64Type>().values(), col.nulls())?,
                    DataType::Timestamp(unit, _) => c.write_i64(
                        match unit {
                            TimeUnit::Second => col.as_primitive::<TimestampSecondType>().values(),
                            TimeUnit::Millisecond => col.as_primitive::<TimestampMillisecondType>().values(),
                            TimeUnit::Microsecond => col.as_primitive::<TimestampMicrosecondType>().values(),
                            TimeUnit::Nanosecond => col.as_primitive::<TimestampNanosecondType>().values(),
                        },
                        col.nulls(),
                    )?,
                    other => {
                        return Err(ParquetError::General(format!("{}: {other} in an integer column", field.name())))
                    }
                },
                Lane::Str(c) => match col.as_string_opt::<i32>() {
                    Some(a) => c.write(a)?,
                    None => {
                        let other = col.data_type();
                        return Err(ParquetError::General(format!("{}: {other} in a string column", field.name())));
                    }
                },
                Lane::Bool(c) => match col.as_boolean_opt() {
                    Some(a) => c.write(a)?,
                    None => {
                        let other = col.data_type();
                        return Err(ParquetError::General(format!("{}: {other} in a boolean column", field.name())));
                    }
                },
            }
        }
        self.rows += batch.num_rows();
        if self.rows >= self.max_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the rows buffered as a row group.
    pub fn flush(&mut self) -> Result<()> {
        let Some(lanes) = self.lanes.take() else { return Ok(()) };
        // Whatever happens below, these rows are no longer buffered.
        self.rows = 0;
        let mut rg = self.writer.next_row_group()?;
        for (i, lane) in lanes.into_iter().enumerate() {
            match lane {
                Lane::Parquet(w) => w.close()?.append_to_row_group(&mut rg)?,
                Lane::Int(mut c) => {
                    let (bytes, close) = c.finish()?;
                    rg.append_column(&bytes, close)?;
                    self.spare[i] = Some(Lane::Int(c));
                }
                Lane::Str(mut c) => {
                    let (bytes, close) = c.finish()?;
                    rg.append_column(&bytes, close)?;
                    self.spare[i] = Some(Lane::Str(c));
                }
                Lane::Bool(mut c) => {
                    let (bytes, close) = c.finish()?;
                    rg.append_column(&bytes, close)?;
                    self.spare[i] = Some(Lane::Bool(c));
                }
            }
        }
        rg.close()?;
        Ok(())
    }

    pub fn flushed_row_groups(&self) -> &[RowGroupMetaData] {
        self.writer.flushed_row_groups()
    }

    /// What the buffered row group would take once encoded, about.
    pub fn in_progress_size(&self) -> usize {
        self.lanes.as_ref().map_or(0, |lanes| {
            lanes
                .iter()
                .map(|l| match l {
                    Lane::Parquet(w) => w.get_estimated_total_bytes(),
                    Lane::Int(c) => c.estimated_bytes(),
                    Lane::Str(c) => c.estimated_bytes(),
                    Lane::Bool(c) => c.estimated_bytes(),
                })
                .sum()
        })
    }

    /// The columns [`IntColumn`], [`StrColumn`] and [`BoolColumn`] encode.
    pub fn own_columns(&self) -> Vec<&str> {
        let fields = self.schema.fields().iter().zip(&self.own);
        fields.filter(|(_, &own)| own != Own::Parquet).map(|(f, _)| f.name().as_str()).collect()
    }

    pub fn in_progress_rows(&self) -> usize {
        self.rows
    }

    pub fn bytes_written(&self) -> usize {
        self.writer.bytes_written()
    }

    /// Hands what was written to the file (not to the disk: see `File::sync_data`).
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    pub fn inner(&self) -> &File {
        self.writer.inner()
    }

    pub fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.writer.append_key_value_metadata(kv)
    }

    /// Writes the last row group and the footer.
    pub fn into_inner(mut self) -> Result<File> {
        self.flush()?;
        self.writer.into_inner()
    }
}
