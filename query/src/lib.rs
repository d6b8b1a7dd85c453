//! `capq`: SQL over a capture directory with Apache DataFusion.
//!
//! Every table of the capture is registered (empty with its schema when it has no
//! segments), so any query over any table plans. `main.rs` only parses arguments and
//! turns [`run`]'s result into an exit code.

pub mod catalog;
pub mod dictscan;
pub mod groupkeys;
pub mod listfns;
pub mod localfs;
pub mod output;
pub mod pushdown;
pub mod timearg;
pub mod viewcmp;

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use capture_schemas::tables::Col;
use capture_schemas::Table;
use clap::Parser;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use futures::StreamExt;

use crate::catalog::Window;
use crate::output::Format;

const EXAMPLES: &str = "\
EXAMPLES:
  capq \"SELECT comm, count(*) AS n FROM exec GROUP BY comm ORDER BY n DESC LIMIT 10\"
  capq --since 1h \"SELECT abs_path, bytes_written FROM file WHERE op = 'close' ORDER BY bytes_written DESC LIMIT 5\"
  capq \"SELECT e.argv, p.path AS parent FROM exec e JOIN exec p ON e.parent_exec_id = p.exec_id\"
  capq \"SELECT path, array_length(argv) FROM exec WHERE array_has(argv, '--force')\"
  capq --format csv --output out.csv \"SELECT * FROM exit WHERE exit_code <> 0\"
  capq --dir s3://telemetry/capture --since 1h \"SELECT host, count(*) FROM exec GROUP BY host\"
  capq --tables                     # every table and column, with what it means
  echo 'DESCRIBE file' | capq       # SQL from standard input
  capq                              # on a terminal: an interactive prompt with history

Tables: exec, exit, file, net, dns, module, stats; each has the column host. Times are UTC. capq only reads them:
COPY, INSERT, CREATE, DROP and SET need --allow-writes.
Exit status: 0 ok, 1 query error, 2 usage error, 3 answered but some segments of the
tables it read were skipped (each named in a warning).";

/// SQL over a capture directory.
#[derive(Debug, Parser)]
#[command(name = "capq", version, about = "SQL over capture segments (Apache DataFusion)", after_help = EXAMPLES)]
pub struct Cli {
    /// Capture directory (the recorder's --output-dir), or s3://BUCKET/PREFIX (what
    /// `--upload` ships; credentials, region and endpoint as the AWS tools take them:
    /// AWS_* variables, ~/.aws/credentials and ~/.aws/config; s3:// needs a build with
    /// feature `s3`: `cargo build --release -p capq --features s3`).
    #[arg(long, short = 'd', env = "CAPQ_DIR", default_value = "./capture")]
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write results to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Only events at or after this time: a duration ago (30m, 2h, 1d) or a UTC time
    /// (2026-11-25, 2026-11-25 13:00, RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// List every table and column with its type and meaning, then exit.
    #[arg(long)]
    pub tables: bool,
    /// Longest cell shown by --format table; longer values are cut with '…'.
    #[arg(long, default_value_t = 60)]
    pub max_width: usize,
    /// More log output (-v, -vv); RUST_LOG overrides.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no warnings about skipped segments.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Allow SQL that writes or reads outside the capture: COPY, INSERT, CREATE (EXTERNAL)
    /// TABLE/VIEW, DROP and SET. Without it capq only reads the capture's tables.
    #[arg(long)]
    pub allow_writes: bool,
    /// The SQL to run (several statements separated by ';'). Without it: standard input,
    /// or an interactive prompt on a terminal.
    pub sql: Option<String>,
}

/// Stack of the threads that plan and run SQL: planning, optimizing and running an
/// expression recurse once per level of nesting (`a + b + c` is `(a + b) + c`).
pub const STACK_BYTES: usize = 1 << 30;
/// The deepest statement capq plans, counted as [`expr_depth`] counts it. DataFusion's
/// planning time grows with the square of the depth (each level displays and types the
/// levels below it): 5,000 levels took 43 s here, 10,000 166 s, 20,000 over 10 minutes.
pub const MAX_DEPTH: usize = 10_000;

/// How deep a statement's expressions nest: `a + b + c` is `(a + b) + c`, three levels
/// over its leaves; a long IN list is flat. Counted on the parsed statement (parsing
/// builds chains in a loop, not by recursion, so it is safe at any depth).
pub fn expr_depth(statement: &datafusion::sql::sqlparser::ast::Statement) -> usize {
    use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
    use std::ops::ControlFlow;
    struct Depth {
        now: usize,
        max: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now += 1;
            self.max = self.max.max(self.now);
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut d = Depth { now: 0, max: 0 };
    let _ = statement.visit(&mut d);
    d.max
}

/// Refuses, in one line, a statement that nests deeper than capq plans. SQL this parser
/// does not take (DataFusion's own statements, such as COPY ... OPTIONS) is left to
/// DataFusion's parser, which reports its own errors.
fn check_depth(sql: &str) -> Result<(), Failure> {
    let Ok(statements) = SqlParser::parse_sql(&GenericDialect {}, sql) else { return Ok(()) };
    let depth = statements.iter().map(expr_depth).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(Failure::query(format!(
            "a statement's expressions nest {depth} deep, more than capq plans ({MAX_DEPTH}): split it, or write long OR chains as IN (...)"
        )));
    }
    Ok(())
}

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Answered, but some segments were skipped.
    Partial,
}

/// An error for the user: one line, and the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 2 }
    }
    fn query(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 1 }
    }
}

fn table_list() -> String {
    Table::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

/// Turns a DataFusion error into one line a person can act on.
pub fn explain(e: &DataFusionError) -> String {
    let msg = e.to_string();
    let one_line = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(rest) = one_line.split("table '").nth(1) {
        if one_line.contains("not found") {
            let name = rest.split('\'').next().unwrap_or("").rsplit('.').next().unwrap_or("");
            return format!(
                "unknown table '{name}': the tables are {} (capq --tables lists their columns)",
                table_list()
            );
        }
    }
    for kind in ["DDL not supported: ", "DML not supported: ", "Statement not supported: "] {
        if let Some(what) = one_line.split(kind).nth(1) {
            return format!(
                "capq only reads the capture's tables, and {what} would change or read something else: pass --allow-writes to run it"
            );
        }
    }
    if one_line.contains("IO error") && one_line.contains("Broken pipe") {
        return "broken pipe".into();
    }
    one_line
}

fn is_broken_pipe(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::IoError(io) => io.kind() == io::ErrorKind::BrokenPipe,
        DataFusionError::ArrowError(a, _) => a.to_string().contains("Broken pipe"),
        DataFusionError::Context(_, inner) => is_broken_pipe(inner),
        other => other.to_string().contains("Broken pipe"),
    }
}

/// `capq --tables`: every table and column with type and meaning.
pub fn describe_all(out: &mut dyn Write) -> io::Result<()> {
    for t in Table::ALL {
        writeln!(out, "{}: {}", t.name(), t.description())?;
        let mut cols = t.columns();
        cols.push(&capture_schemas::tables::HOST_COLUMN);
        let w = cols.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let tw = cols.iter().map(|c| c.ty.sql_name().chars().count()).max().unwrap_or(0);
        for c in cols {
            let ty = c.ty.sql_name();
            let pad = tw - ty.chars().count();
            writeln!(out, "  {:w$}  {ty}{}  {}", c.name, " ".repeat(pad), c.description)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The result of `DESCRIBE <table>`: one row per column with its description.
fn describe_batch(table: Table) -> RecordBatch {
    let mut cols: Vec<&Col> = table.columns();
    cols.push(&capture_schemas::tables::HOST_COLUMN);
    let schema = Arc::new(Schema::new(vec![
        Field::new("column_name", DataType::Utf8, false),
        Field::new("data_type", DataType::Utf8, false),
        Field::new("is_nullable", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
    ]));
    let field_desc = |c: &Col| c.description.to_string();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(cols.iter().map(|c| c.name))),
            Arc::new(StringArray::from_iter_values(cols.iter().map(|c| c.ty.sql_name()))),
            Arc::new(StringArray::from_iter_values(cols.iter().map(|c| if c.nullable { "YES" } else { "NO" }))),
            Arc::new(StringArray::from_iter_values(cols.iter().map(|c| field_desc(c)))),
        ],
    )
    .expect("describe rows match their schema")
}

/// `DESCRIBE t` / `DESC t` with a capture table name, handled here so descriptions show.
fn describe_target(sql: &str) -> Option<Result<Table, String>> {
    let words: Vec<&str> = sql.trim().trim_end_matches(';').split_whitespace().collect();
    match words.as_slice() {
        [kw, name] if kw.eq_ignore_ascii_case("describe") || kw.eq_ignore_ascii_case("desc") => {
            let name = name.trim_matches('"');
            Some(Table::from_name(&name.to_ascii_lowercase()).ok_or_else(|| {
                format!("unknown table '{name}': the tables are {} (capq --tables lists their columns)", table_list())
            }))
        }
        _ => None,
    }
}

/// Where results go.
pub struct Sink {
    pub format: Format,
    pub output: Option<PathBuf>,
    pub max_width: usize,
}

/// Creates (or truncates) an output file: new files are 0640, as the capture's are (an
/// existing file keeps its mode).
fn create_output(p: &std::path::Path) -> Result<std::fs::File, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(p)
        .map_err(|e| Failure::usage(format!("cannot create output file {}: {e}", p.display())))
}

impl Sink {
    fn open(&self) -> Result<Box<dyn Write>, Failure> {
        match &self.output {
            Some(p) => create_output(p).map(|f| Box::new(io::BufWriter::new(f)) as Box<dyn Write>),
            None => Ok(Box::new(io::BufWriter::new(io::stdout().lock()))),
        }
    }
}

/// The registered capture, what its registration skipped, and what a query may do. Every
/// table is registered empty at first; a statement's tables are read (their segments
/// listed, their footers checked) when a statement first names them. With
/// `--allow-writes`, the first statement reads them all: a view made or a table dropped
/// under a capture table's name (`CREATE VIEW` and `DROP` name no table that the parser
/// reports) is then never replaced by that table's first read.
pub struct Session {
    pub ctx: SessionContext,
    skipped: std::sync::Mutex<Vec<(Table, PathBuf, String)>>,
    /// Where the capture lies.
    src: catalog::Source,
    /// The segments each table read so far is registered over, and the time window.
    used: std::sync::Mutex<Vec<(Table, Vec<catalog::Segment>)>>,
    window: Window,
    /// Tables whose skipped segments were named already (each is named once).
    warned: std::sync::Mutex<Vec<Table>>,
    /// A table read had skipped segments: the exit status is 3.
    partial: std::sync::atomic::AtomicBool,
    options: SQLOptions,
    /// Every table read before the first statement (`--allow-writes`).
    eager: bool,
    /// Each segment's schema, as the catalog read it (for dictscan).
    files: dictscan::FileSchemas,
}

impl Session {
    /// Reads whole every segment of `tables` (a query over them failed while reading): each
    /// that cannot be read is named in a warning and the table registered again without
    /// it. Returns them, as "PATH: why".
    async fn drop_unreadable(&self, tables: &[Table]) -> datafusion::error::Result<Vec<String>> {
        let used: Vec<(Table, Vec<catalog::Segment>)> = {
            let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            used.iter().filter(|(t, _)| tables.contains(t)).cloned().collect()
        };
        let mut bad = Vec::new();
        for (table, mut segments) in used {
            let before = segments.len();
            let mut kept = Vec::new();
            for seg in segments.drain(..) {
                match catalog::read_whole(&self.src, &seg.path).await {
                    Ok(()) => kept.push(seg),
                    Err(why) => {
                        log::warn!("skipping {}: {why}", seg.path.display());
                        bad.push(format!("{}: {why}", seg.path.display()));
                    }
                }
            }
            if kept.len() != before {
                catalog::register(&self.ctx, table, &kept, self.window)?;
                self.partial.store(true, std::sync::atomic::Ordering::Relaxed);
                let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(entry) = used.iter_mut().find(|(t, _)| *t == table) {
                    entry.1 = kept;
                }
            }
        }
        Ok(bad)
    }

    /// Registers each of `tables` not read yet over its segments (catalog::load).
    async fn load(&self, tables: &[Table]) -> datafusion::error::Result<()> {
        for &t in tables {
            if self.used.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|(u, _)| *u == t) {
                continue;
            }
            let mut report = catalog::Report::default();
            catalog::load(&self.ctx, &self.src, t, self.window, &mut report, &self.files).await?;
            log::debug!(
                "{}: {} segments registered, {} pruned by time, {} skipped",
                t.name(),
                report.segments,
                report.pruned,
                report.skipped.len()
            );
            self.skipped.lock().unwrap_or_else(|p| p.into_inner()).extend(report.skipped);
            self.used.lock().unwrap_or_else(|p| p.into_inner()).extend(report.used);
        }
        Ok(())
    }

    /// Names what was skipped of the tables a statement reads (once per table).
    fn warn_for(&self, tables: &[Table]) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        for t in tables {
            if warned.contains(t) {
                continue;
            }
            warned.push(*t);
            let skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
            for (_, path, why) in skipped.iter().filter(|(st, _, _)| st == t) {
                log::warn!("skipping {}: {why}", path.display());
                self.partial.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Plans one statement: names what was skipped of the tables it reads, and refuses what
/// capq does not allow.
async fn plan(s: &Session, sql: &str) -> datafusion::error::Result<(datafusion::dataframe::DataFrame, Vec<Table>)> {
    let state = s.ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(sql, &dialect)?;
    let tables: Vec<Table> = state
        .resolve_table_references(&statement)?
        .iter()
        .filter_map(|r| Table::from_name(&r.table().to_ascii_lowercase()))
        .collect();
    s.load(if s.eager { &Table::ALL } else { &tables }).await?;
    s.warn_for(&tables);
    let plan = state.statement_to_plan(statement).await?;
    s.options.verify_plan(&plan)?;
    Ok((s.ctx.execute_logical_plan(plan).await?, tables))
}

/// CSV and JSON results are held back up to this size: a query that fails before then
/// (a segment whose data is corrupt behind an intact footer) has printed nothing, and runs
/// again without the bad segment. Past it, rows are written as they come.
pub const HOLD_BYTES: usize = 64 << 20;

/// Output held in memory until it passes [`HOLD_BYTES`] or the query ends.
struct Spool<'a> {
    sink: &'a Sink,
    held: Vec<u8>,
    out: Option<Box<dyn Write>>,
    /// A failure opening the output, kept for the caller (io::Error loses the exit code).
    open_error: Option<Failure>,
}

impl<'a> Spool<'a> {
    fn new(sink: &'a Sink) -> Spool<'a> {
        Spool { sink, held: Vec::new(), out: None, open_error: None }
    }

    fn release(&mut self) -> io::Result<&mut Box<dyn Write>> {
        if self.out.is_none() {
            match self.sink.open() {
                Ok(mut o) => {
                    o.write_all(&std::mem::take(&mut self.held))?;
                    self.out = Some(o);
                }
                Err(f) => {
                    let msg = f.message.clone();
                    self.open_error = Some(f);
                    return Err(io::Error::other(msg));
                }
            }
        }
        Ok(self.out.as_mut().expect("opened above"))
    }

    /// Whether anything reached the output.
    fn emitted(&self) -> bool {
        self.out.is_some()
    }
}

impl Write for Spool<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.out.is_none() && self.held.len() + data.len() <= HOLD_BYTES {
            self.held.extend_from_slice(data);
            return Ok(data.len());
        }
        self.release()?.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

/// How running a planned statement failed: whether any of its output was written.
struct RunError {
    error: Failure,
    emitted: bool,
}

/// Runs a planned statement into the sink.
async fn emit(df: datafusion::dataframe::DataFrame, sink: &Sink) -> Result<(), RunError> {
    let q = |e: DataFusionError| {
        if is_broken_pipe(&e) {
            Failure { message: String::new(), code: 0 }
        } else {
            Failure::query(explain(&e))
        }
    };
    let early = |error: Failure| RunError { error, emitted: false };
    let schema: datafusion::arrow::datatypes::SchemaRef = Arc::new(df.schema().as_arrow().clone());
    match sink.format {
        Format::Table => {
            let batches = df.collect().await.map_err(|e| early(q(e)))?;
            let mut out = sink.open().map_err(early)?;
            write_batches(&mut *out, sink, schema, &batches).map_err(|e| RunError { error: q(e), emitted: true })
        }
        Format::Parquet => {
            // The file is written again from the start when the query runs again.
            let Some(path) = &sink.output else {
                return Err(early(Failure::usage("--format parquet writes a file: add --output FILE")));
            };
            let mut stream = df.execute_stream().await.map_err(|e| early(q(e)))?;
            let file = create_output(path).map_err(early)?;
            let schema = output::plain_strings(&schema);
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
                .map_err(|e| early(q(e.into())))?;
            while let Some(b) = stream.next().await {
                let b = output::to_plain(&b.map_err(|e| early(q(e)))?, &schema).map_err(|e| early(q(e)))?;
                w.write(&b).map_err(|e| early(q(e.into())))?;
            }
            w.close().map_err(|e| early(q(e.into())))?;
            Ok(())
        }
        Format::Csv | Format::Json => {
            let mut stream = df.execute_stream().await.map_err(|e| early(q(e)))?;
            let mut spool = Spool::new(sink);
            let result = async {
                let mut w = if sink.format == Format::Csv {
                    output::StreamWriter::csv(&mut spool)
                } else {
                    output::StreamWriter::json(&mut spool)
                };
                let mut wrote = false;
                while let Some(b) = stream.next().await {
                    w.write(&b?)?;
                    wrote = true;
                }
                if !wrote && sink.format == Format::Csv {
                    // No rows: still write the header.
                    w.write(&RecordBatch::new_empty(schema))?;
                }
                w.finish()
            }
            .await;
            let emitted = spool.emitted();
            if let Some(f) = spool.open_error.take() {
                return Err(RunError { error: f, emitted });
            }
            result
                .and_then(|()| spool.release().and_then(|o| o.flush()).map_err(DataFusionError::IoError))
                .map_err(|e| RunError { error: q(e), emitted })
        }
    }
}

/// Runs one statement and writes its result. When it fails while reading, the segments
/// of the tables it reads are read whole: those that cannot be are named, left out, and
/// the statement runs again (when nothing was written yet; else it fails naming them).
pub async fn run_statement(s: &Session, sql: &str, sink: &Sink) -> Result<(), Failure> {
    check_depth(sql)?;
    if let Some(t) = describe_target(sql) {
        let table = t.map_err(Failure::query)?;
        let b = describe_batch(table);
        let mut out = sink.open()?;
        return write_batches(&mut *out, sink, b.schema(), &[b]).map_err(|e| Failure::query(explain(&e)));
    }
    let mut retried = false;
    loop {
        let (df, tables) = plan(s, sql).await.map_err(|e| Failure::query(explain(&e)))?;
        let Err(RunError { error, emitted }) = emit(df, sink).await else { return Ok(()) };
        if error.code == 0 || retried {
            return Err(error);
        }
        let bad = s.drop_unreadable(&tables).await.map_err(|e| Failure::query(explain(&e)))?;
        if bad.is_empty() {
            return Err(error);
        }
        if emitted {
            return Err(Failure::query(format!(
                "{}: the output above is incomplete (results past {} MiB are written as they come); that segment is left out of the next statements",
                bad.join("; "),
                HOLD_BYTES >> 20
            )));
        }
        retried = true;
    }
}

fn write_batches(
    out: &mut dyn Write,
    sink: &Sink,
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> datafusion::error::Result<()> {
    match sink.format {
        Format::Table => output::write_table(out, &schema, batches, sink.max_width)?,
        Format::Csv | Format::Json => {
            let mut w = if sink.format == Format::Csv {
                output::StreamWriter::csv(out)
            } else {
                output::StreamWriter::json(out)
            };
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            return Ok(());
        }
        Format::Parquet => {
            return Err(DataFusionError::Plan("DESCRIBE output cannot be written as parquet: use --format csv".into()));
        }
    }
    out.flush().map_err(DataFusionError::IoError)
}

/// Splits a script into statements (string literals and comments respected).
fn statements(sql: &str) -> Result<Vec<String>, Failure> {
    if describe_target(sql).is_some() {
        return Ok(vec![sql.to_string()]);
    }
    let parsed =
        SqlParser::parse_sql(&GenericDialect {}, sql).map_err(|e| Failure::query(format!("SQL syntax error: {e}")))?;
    Ok(parsed.into_iter().map(|s| s.to_string()).collect())
}

async fn run_script(ctx: &Session, sql: &str, sink: &Sink) -> Result<(), Failure> {
    let parts: Vec<&str> = sql.split(';').map(str::trim).filter(|s| !s.is_empty()).collect();
    // DESCRIBE is ours, not the SQL parser's: take scripts statement by statement when
    // they hold one, else let the parser split.
    if parts.iter().any(|p| describe_target(p).is_some()) {
        for p in parts {
            run_statement(ctx, p, sink).await?;
        }
        return Ok(());
    }
    let stmts = statements(sql)?;
    if stmts.is_empty() {
        return Err(Failure::usage("no SQL given"));
    }
    for s in stmts {
        run_statement(ctx, &s, sink).await?;
    }
    Ok(())
}

async fn repl(ctx: &Session, sink: &Sink) -> Result<(), Failure> {
    let mut rl =
        rustyline::DefaultEditor::new().map_err(|e| Failure::usage(format!("cannot start the prompt: {e}")))?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".capq_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    eprintln!(
        "capq {}: SQL ending with ';'. \\d lists tables, \\d TABLE describes one, \\q quits.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "capq> " } else { "   -> " };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(_) => break,
        };
        let t = line.trim();
        if buf.is_empty() {
            match t {
                "" => continue,
                "\\q" | "quit" | "exit" => break,
                "\\d" => {
                    let _ = rl.add_history_entry(t);
                    let _ = describe_all(&mut io::stdout());
                    continue;
                }
                _ if t.starts_with("\\d ") => {
                    let _ = rl.add_history_entry(t);
                    if let Err(f) = run_statement(ctx, &format!("DESCRIBE {}", &t[3..]), sink).await {
                        eprintln!("capq: error: {}", f.message);
                    }
                    continue;
                }
                _ => {}
            }
        }
        buf.push_str(&line);
        buf.push('\n');
        if t.ends_with(';') {
            let sql = std::mem::take(&mut buf);
            let _ = rl.add_history_entry(sql.trim());
            if let Err(f) = run_script(ctx, &sql, sink).await {
                if !f.message.is_empty() {
                    eprintln!("capq: error: {}", f.message);
                }
            }
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

/// The whole command: returns how it ended, or the error to print.
pub async fn run(cli: Cli) -> Result<Outcome, Failure> {
    if cli.tables {
        let mut out = io::BufWriter::new(io::stdout().lock());
        return match describe_all(&mut out).and_then(|()| out.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::query(e.to_string())),
            _ => Ok(Outcome::Ok),
        };
    }
    if cli.format == Format::Parquet && cli.output.is_none() {
        return Err(Failure::usage("--format parquet writes a file: add --output FILE"));
    }
    let src = catalog::Source::parse(&cli.dir).map_err(|e| Failure::usage(format!("--dir {e}")))?;
    match std::fs::metadata(&cli.dir) {
        _ if matches!(src, catalog::Source::S3 { .. }) => {}
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Failure::usage(format!(
                "{} is not a directory: pass the capture directory with --dir or CAPQ_DIR",
                cli.dir.display()
            )))
        }
        Err(_) => {
            return Err(Failure::usage(format!(
                "capture directory {} does not exist: pass --dir DIR or set CAPQ_DIR",
                cli.dir.display()
            )))
        }
    }
    let now = chrono::Utc::now().timestamp_micros();
    let parse = |s: &Option<String>, what: &str| -> Result<Option<i64>, Failure> {
        s.as_deref()
            .map(|v| timearg::parse_time(v, now).map_err(|e| Failure::usage(format!("--{what}: {e}"))))
            .transpose()
    };
    let window = Window { since: parse(&cli.since, "since")?, until: parse(&cli.until, "until")? };
    if let (Some(s), Some(u)) = (window.since, window.until) {
        if s >= u {
            return Err(Failure::usage("--since must be earlier than --until"));
        }
    }
    // Two partitions per CPU: a scan's partitions are equal in bytes, not in work, and
    // with one per CPU the first to finish left its CPU idle while the other ran on (the
    // op count used 1.63 of 2 CPUs, with two per CPU 1.71 to 1.78; the query benchmark's
    // set 0.94 in geometric mean, four per CPU 1.03 times that; README, Queries).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut config = SessionConfig::new().with_information_schema(true).with_target_partitions(2 * cpus);
    // A join whose smaller side has up to 4 M rows builds one hash table that every
    // partition probes (CollectLeft), instead of hashing both sides into partitions: the
    // 24 M file rows joined to 1.2 M execs, 12 paired runs, CPU -9% and wall time -2% in
    // the median (README, Queries).
    let o = &mut config.options_mut().optimizer;
    o.hash_join_single_partition_threshold_rows = 4_000_000;
    o.hash_join_single_partition_threshold = 256 << 20;
    let files = dictscan::FileSchemas::default();
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(pushdown::SelectivePushdown))
        .with_physical_optimizer_rule(Arc::new(groupkeys::StringGroupKeys { files: files.clone() }))
        .with_physical_optimizer_rule(Arc::new(viewcmp::ViewEqRule { files: files.clone() }))
        .with_physical_optimizer_rule(Arc::new(dictscan::ViewLists { files: files.clone() }))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udf(listfns::ArrayLength::udf());
    let local = datafusion::execution::object_store::ObjectStoreUrl::local_filesystem();
    ctx.register_object_store(local.as_ref(), Arc::new(localfs::InlineLocal::new()));
    catalog::register_empty(&ctx, &src, window).map_err(|e| Failure::query(explain(&e)))?;
    let ctx = Session {
        ctx,
        src,
        skipped: Default::default(),
        used: Default::default(),
        window,
        warned: Default::default(),
        partial: Default::default(),
        options: SQLOptions::new()
            .with_allow_ddl(cli.allow_writes)
            .with_allow_dml(cli.allow_writes)
            .with_allow_statements(cli.allow_writes),
        eager: cli.allow_writes,
        files,
    };
    let sink = Sink { format: cli.format, output: cli.output.clone(), max_width: cli.max_width.max(4) };
    match cli.sql {
        Some(sql) => run_script(&ctx, &sql, &sink).await?,
        None if io::stdin().is_terminal() => repl(&ctx, &sink).await?,
        None => {
            let mut sql = String::new();
            io::stdin()
                .read_to_string(&mut sql)
                .map_err(|e| Failure::usage(format!("reading SQL from standard input: {e}")))?;
            if sql.trim().is_empty() {
                return Err(Failure::usage("no SQL given: pass it as an argument or on standard input (capq --help)"));
            }
            run_script(&ctx, &sql, &sink).await?;
        }
    }
    Ok(if ctx.partial.load(std::sync::atomic::Ordering::Relaxed) { Outcome::Partial } else { Outcome::Ok })
}
