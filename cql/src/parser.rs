//! Hand-written lexer and recursive-descent parser for the supported CQL subset.

use std::fmt;

use crate::error::{CqlError, Result};
use crate::types::CqlType;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Identifier or keyword; `quoted` identifiers keep their case and are never keywords.
    Ident(String, bool),
    Str(String),
    Int(String),
    Float(String),
    Uuid(uuid::Uuid),
    Blob(Vec<u8>),
    Sym(&'static str),
    Marker,
    NamedMarker(String),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s, _) => write!(f, "{s}"),
            Tok::Str(s) => write!(f, "'{s}'"),
            Tok::Int(s) | Tok::Float(s) => write!(f, "{s}"),
            Tok::Uuid(u) => write!(f, "{u}"),
            Tok::Blob(b) => write!(
                f,
                "0x{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
            Tok::Sym(s) => write!(f, "{s}"),
            Tok::Marker => write!(f, "?"),
            Tok::NamedMarker(n) => write!(f, ":{n}"),
            Tok::Eof => write!(f, "<EOF>"),
        }
    }
}

const SYMS: [&str; 20] = [
    "<=", ">=", "!=", "=", "<", ">", "(", ")", ",", ";", ".", "*", "[", "]", "{", "}", ":", "+",
    "-", "?",
];

fn is_uuid_at(s: &[u8]) -> bool {
    if s.len() < 36 {
        return false;
    }
    for (i, &c) in s[..36].iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            c == b'-'
        } else {
            c.is_ascii_hexdigit()
        };
        if !ok {
            return false;
        }
    }
    // Must not continue as an identifier/number.
    s.get(36)
        .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
}

fn lex(input: &str) -> Result<Vec<Tok>> {
    let b = input.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if (c == b'-' && b.get(i + 1) == Some(&b'-')) || (c == b'/' && b.get(i + 1) == Some(&b'/'))
        {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = input[i + 2..]
                .find("*/")
                .ok_or_else(|| CqlError::syntax("line 1: unterminated comment"))?;
            i += end + 4;
            continue;
        }
        if is_uuid_at(&b[i..]) {
            let u = uuid::Uuid::parse_str(&input[i..i + 36])
                .map_err(|_| CqlError::syntax(format!("invalid uuid {}", &input[i..i + 36])))?;
            out.push(Tok::Uuid(u));
            i += 36;
            continue;
        }
        if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
            let start = i + 2;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_hexdigit() {
                j += 1;
            }
            let hex = &input[start..j];
            if !hex.len().is_multiple_of(2) {
                return Err(CqlError::syntax(format!(
                    "invalid blob constant 0x{hex}: odd length"
                )));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|k| u8::from_str_radix(&hex[k..k + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map_err(|_| CqlError::syntax(format!("invalid blob constant 0x{hex}")))?;
            out.push(Tok::Blob(bytes));
            i = j;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            let mut float = false;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len()
                && b[i] == b'.'
                && b.get(i + 1)
                    .is_none_or(|d| d.is_ascii_digit() || !d.is_ascii_alphabetic())
            {
                float = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    float = true;
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let s = input[start..i].to_string();
            out.push(if float { Tok::Float(s) } else { Tok::Int(s) });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            out.push(Tok::Ident(input[start..i].to_ascii_lowercase(), false));
            continue;
        }
        if c == b'"' || c == b'\'' {
            let mut s = String::new();
            i += 1;
            let mut closed = false;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        s.push(c as char);
                        i += 2;
                        continue;
                    }
                    closed = true;
                    i += 1;
                    break;
                }
                // Copy a whole UTF-8 character.
                let ch_len = input[i..].chars().next().map_or(1, |ch| ch.len_utf8());
                s.push_str(&input[i..i + ch_len]);
                i += ch_len;
            }
            if !closed {
                return Err(CqlError::syntax("unterminated quoted string or identifier"));
            }
            out.push(if c == b'"' {
                Tok::Ident(s, true)
            } else {
                Tok::Str(s)
            });
            continue;
        }
        if c == b'$' && b.get(i + 1) == Some(&b'$') {
            let end = input[i + 2..]
                .find("$$")
                .ok_or_else(|| CqlError::syntax("unterminated $$ string"))?;
            out.push(Tok::Str(input[i + 2..i + 2 + end].to_string()));
            i += end + 4;
            continue;
        }
        if c == b':'
            && b.get(i + 1)
                .is_some_and(|d| d.is_ascii_alphabetic() || *d == b'_')
        {
            let start = i + 1;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::NamedMarker(input[start..i].to_ascii_lowercase()));
            continue;
        }
        let mut matched = false;
        for s in SYMS {
            if input[i..].starts_with(s) {
                out.push(if s == "?" { Tok::Marker } else { Tok::Sym(s) });
                i += s.len();
                matched = true;
                break;
            }
        }
        if !matched {
            let ch = input[i..].chars().next().unwrap_or('?');
            return Err(CqlError::syntax(format!(
                "line 1:{i} no viable alternative at character '{ch}'"
            )));
        }
    }
    out.push(Tok::Eof);
    Ok(out)
}

// ---------------------------------------------------------------- AST

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Str(String),
    Int(i128),
    Float(String),
    Bool(bool),
    Uuid(uuid::Uuid),
    Blob(Vec<u8>),
    List(Vec<Literal>),
    Set(Vec<Literal>),
    Map(Vec<(Literal, Literal)>),
}

impl Literal {
    pub fn kind(&self) -> &'static str {
        match self {
            Literal::Null => "null",
            Literal::Str(_) => "STRING",
            Literal::Int(_) => "INTEGER",
            Literal::Float(_) => "FLOAT",
            Literal::Bool(_) => "BOOLEAN",
            Literal::Uuid(_) => "UUID",
            Literal::Blob(_) => "HEX",
            Literal::List(_) => "list",
            Literal::Set(_) => "set",
            Literal::Map(_) => "map",
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => write!(f, "null"),
            Literal::Str(s) => write!(f, "'{s}'"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(s) => write!(f, "{s}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Uuid(u) => write!(f, "{u}"),
            Literal::Blob(b) => write!(
                f,
                "0x{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
            Literal::List(l) => write!(
                f,
                "[{}]",
                l.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Literal::Set(l) => write!(
                f,
                "{{{}}}",
                l.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Literal::Map(m) => write!(
                f,
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A value position: a literal or a bind marker (index in textual order of markers).
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Lit(Literal),
    Marker(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct QName {
    pub keyspace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Ne,
    Contains,
    ContainsKey,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RelValue {
    One(Term),
    /// `IN (a, b, ...)`
    List(Vec<Term>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub column: String,
    pub op: Op,
    pub value: RelValue,
    /// `token(a, b) > x`: the columns inside token(); `column` is then empty.
    pub token_of: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectorExpr {
    Column(String),
    WriteTime(String),
    Ttl(String),
    /// `token(pk columns)`
    Token(Vec<String>),
    CountStar,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub expr: SelectorExpr,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub table: QName,
    /// Empty means `*`.
    pub selectors: Vec<Selector>,
    pub distinct: bool,
    pub where_: Vec<Relation>,
    pub order_by: Vec<(String, bool)>,
    pub limit: Option<Term>,
    pub per_partition_limit: Option<Term>,
    pub allow_filtering: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Using {
    pub ttl: Option<Term>,
    pub timestamp: Option<Term>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub table: QName,
    pub columns: Vec<String>,
    pub values: Vec<Term>,
    pub if_not_exists: bool,
    pub using: Using,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    None,
    IfExists,
}

/// Collection operations in UPDATE ... SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollOp {
    /// `c = c + x`
    Append,
    /// `c = x + c` (lists)
    Prepend,
    /// `c = c - x`
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Assignment {
    /// `c = x`
    Set(String, Term),
    Collection(String, CollOp, Term),
    /// `c[key] = value`
    Element(String, Term, Term),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub table: QName,
    pub using: Using,
    pub assignments: Vec<Assignment>,
    pub where_: Vec<Relation>,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub table: QName,
    pub columns: Vec<String>,
    /// `DELETE c[key]`: map keys or list indexes.
    pub elements: Vec<(String, Term)>,
    pub using: Using,
    pub where_: Vec<Relation>,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDefAst {
    pub name: String,
    pub ty: CqlType,
    pub is_static: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub name: QName,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDefAst>,
    pub partition_key: Vec<String>,
    pub clustering: Vec<String>,
    /// (column, descending)
    pub clustering_order: Vec<(String, bool)>,
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    Logged,
    Unlogged,
    Counter,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Select),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Batch {
        kind: BatchKind,
        using: Using,
        statements: Vec<Statement>,
    },
    CreateKeyspace {
        name: String,
        if_not_exists: bool,
        replication: Vec<(String, String)>,
        durable_writes: bool,
    },
    AlterKeyspace {
        name: String,
        replication: Option<Vec<(String, String)>>,
        durable_writes: Option<bool>,
    },
    DropKeyspace {
        name: String,
        if_exists: bool,
    },
    Use(String),
    CreateTable(CreateTable),
    AlterTableAdd {
        table: QName,
        columns: Vec<ColumnDefAst>,
    },
    DropTable {
        name: QName,
        if_exists: bool,
    },
    Truncate(QName),
}

/// A parsed statement plus the number of bind markers and their names (if named).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub statement: Statement,
    pub marker_names: Vec<Option<String>>,
}

pub fn parse(input: &str) -> Result<Parsed> {
    let toks = lex(input)?;
    let mut p = Parser {
        toks,
        pos: 0,
        markers: Vec::new(),
    };
    let statement = p.statement()?;
    while p.eat_sym(";") {}
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("end of statement"));
    }
    Ok(Parsed {
        statement,
        marker_names: p.markers,
    })
}

/// Parses a type name such as `frozen<map<text, int>>`.
pub fn parse_type(input: &str) -> Result<CqlType> {
    let mut p = Parser {
        toks: lex(input)?,
        pos: 0,
        markers: Vec::new(),
    };
    let t = p.cql_type()?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("end of type"));
    }
    Ok(t)
}

/// `replication` and `durable_writes` from CREATE/ALTER KEYSPACE, when given.
type KeyspaceProps = (Option<Vec<(String, String)>>, Option<bool>);

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    markers: Vec<Option<String>>,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&Tok::Eof)
    }
    fn peek_at(&self, n: usize) -> &Tok {
        self.toks.get(self.pos + n).unwrap_or(&Tok::Eof)
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn unexpected(&self, wanted: &str) -> CqlError {
        let t = self.peek();
        if *t == Tok::Eof {
            CqlError::syntax(format!(
                "line 1: mismatched input at end of statement, expecting {wanted}"
            ))
        } else {
            CqlError::syntax(format!("line 1: mismatched input '{t}' expecting {wanted}"))
        }
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s, false) if s == kw)
    }
    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Ident(s, false) if s == kw)
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&kw.to_ascii_uppercase()))
        }
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(x) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_sym(&mut self, s: &str) -> Result<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{s}'")))
        }
    }
    fn ident(&mut self) -> Result<String> {
        match self.next() {
            Tok::Ident(s, _) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("identifier"))
            }
        }
    }
    fn qname(&mut self) -> Result<QName> {
        let first = self.ident()?;
        if self.eat_sym(".") {
            let name = self.ident()?;
            Ok(QName {
                keyspace: Some(first),
                name,
            })
        } else {
            Ok(QName {
                keyspace: None,
                name: first,
            })
        }
    }
    fn if_not_exists(&mut self) -> Result<bool> {
        if self.is_kw("if") && self.is_kw_at(1, "not") {
            self.pos += 2;
            self.expect_kw("exists")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }
    fn if_exists(&mut self) -> Result<bool> {
        if self.is_kw("if") && self.is_kw_at(1, "exists") {
            self.pos += 2;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn statement(&mut self) -> Result<Statement> {
        let kw = match self.peek() {
            Tok::Ident(s, false) => s.clone(),
            _ => return Err(self.unexpected("a statement")),
        };
        self.pos += 1;
        match kw.as_str() {
            "select" => Ok(Statement::Select(self.select()?)),
            "insert" => Ok(Statement::Insert(self.insert()?)),
            "update" => Ok(Statement::Update(self.update()?)),
            "delete" => Ok(Statement::Delete(self.delete()?)),
            "begin" => self.batch(),
            "use" => Ok(Statement::Use(self.ident()?)),
            "truncate" => {
                self.eat_kw("table");
                Ok(Statement::Truncate(self.qname()?))
            }
            "create" => {
                if self.eat_kw("keyspace") || self.eat_kw("schema") {
                    self.create_keyspace()
                } else if self.eat_kw("table") || self.eat_kw("columnfamily") {
                    Ok(Statement::CreateTable(self.create_table()?))
                } else {
                    Err(CqlError::syntax(format!(
                        "CREATE {} is not supported by ember-cql (supported: CREATE KEYSPACE, CREATE TABLE)",
                        self.peek()
                    )))
                }
            }
            "drop" => {
                if self.eat_kw("keyspace") || self.eat_kw("schema") {
                    let if_exists = self.if_exists()?;
                    Ok(Statement::DropKeyspace {
                        if_exists,
                        name: self.ident()?,
                    })
                } else if self.eat_kw("table") || self.eat_kw("columnfamily") {
                    let if_exists = self.if_exists()?;
                    Ok(Statement::DropTable {
                        if_exists,
                        name: self.qname()?,
                    })
                } else {
                    Err(CqlError::syntax(format!(
                        "DROP {} is not supported by ember-cql (supported: DROP KEYSPACE, DROP TABLE)",
                        self.peek()
                    )))
                }
            }
            "alter" => {
                if self.eat_kw("keyspace") || self.eat_kw("schema") {
                    let name = self.ident()?;
                    self.expect_kw("with")?;
                    let (replication, durable_writes) = self.keyspace_props()?;
                    Ok(Statement::AlterKeyspace {
                        name,
                        replication,
                        durable_writes,
                    })
                } else if self.eat_kw("table") {
                    let table = self.qname()?;
                    if !self.eat_kw("add") {
                        return Err(CqlError::invalid(format!(
                            "ALTER TABLE {} {}: only ALTER TABLE ... ADD is supported by ember-cql",
                            table.name,
                            self.peek()
                        )));
                    }
                    let mut columns = Vec::new();
                    let paren = self.eat_sym("(");
                    loop {
                        columns.push(self.column_def()?);
                        if !paren || !self.eat_sym(",") {
                            break;
                        }
                    }
                    if paren {
                        self.expect_sym(")")?;
                    }
                    Ok(Statement::AlterTableAdd { table, columns })
                } else {
                    Err(CqlError::syntax(format!(
                        "ALTER {} is not supported by ember-cql",
                        self.peek()
                    )))
                }
            }
            other => Err(CqlError::syntax(format!(
                "line 1:0 no viable alternative at input '{other}' (statement not supported by ember-cql)"
            ))),
        }
    }

    fn batch(&mut self) -> Result<Statement> {
        let kind = if self.eat_kw("unlogged") {
            BatchKind::Unlogged
        } else if self.eat_kw("counter") {
            BatchKind::Counter
        } else {
            self.eat_kw("logged");
            BatchKind::Logged
        };
        self.expect_kw("batch")?;
        let using = self.using()?;
        let mut statements = Vec::new();
        loop {
            while self.eat_sym(";") {}
            if self.eat_kw("apply") {
                self.expect_kw("batch")?;
                break;
            }
            let kw = match self.next() {
                Tok::Ident(s, false) => s,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("INSERT, UPDATE, DELETE or APPLY BATCH"));
                }
            };
            statements.push(match kw.as_str() {
                "insert" => Statement::Insert(self.insert()?),
                "update" => Statement::Update(self.update()?),
                "delete" => Statement::Delete(self.delete()?),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("INSERT, UPDATE, DELETE or APPLY BATCH"));
                }
            });
        }
        Ok(Statement::Batch {
            kind,
            using,
            statements,
        })
    }

    fn marker(&mut self, name: Option<String>) -> Term {
        self.markers.push(name);
        Term::Marker(self.markers.len() - 1)
    }

    fn term(&mut self) -> Result<Term> {
        match self.peek().clone() {
            Tok::Marker => {
                self.pos += 1;
                Ok(self.marker(None))
            }
            Tok::NamedMarker(n) => {
                self.pos += 1;
                Ok(self.marker(Some(n)))
            }
            _ => Ok(Term::Lit(self.literal()?)),
        }
    }

    fn literal(&mut self) -> Result<Literal> {
        let t = self.next();
        Ok(match t {
            Tok::Str(s) => Literal::Str(s),
            Tok::Int(s) => Literal::Int(
                s.parse()
                    .map_err(|_| CqlError::syntax(format!("integer constant {s} out of range")))?,
            ),
            Tok::Float(s) => Literal::Float(s),
            Tok::Uuid(u) => Literal::Uuid(u),
            Tok::Blob(b) => Literal::Blob(b),
            Tok::Sym("-") => match self.next() {
                Tok::Int(s) => Literal::Int(-s.parse::<i128>().map_err(|_| {
                    CqlError::syntax(format!("integer constant -{s} out of range"))
                })?),
                Tok::Float(s) => Literal::Float(format!("-{s}")),
                Tok::Ident(s, false) if s == "infinity" => Literal::Float("-Infinity".into()),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("a number"));
                }
            },
            Tok::Ident(s, false) if s == "true" => Literal::Bool(true),
            Tok::Ident(s, false) if s == "false" => Literal::Bool(false),
            Tok::Ident(s, false) if s == "null" => Literal::Null,
            Tok::Ident(s, false) if s == "nan" => Literal::Float("NaN".into()),
            Tok::Ident(s, false) if s == "infinity" => Literal::Float("Infinity".into()),
            Tok::Sym("[") => {
                let mut items = Vec::new();
                if !self.eat_sym("]") {
                    loop {
                        items.push(self.literal()?);
                        if self.eat_sym("]") {
                            break;
                        }
                        self.expect_sym(",")?;
                    }
                }
                Literal::List(items)
            }
            Tok::Sym("{") => {
                if self.eat_sym("}") {
                    return Ok(Literal::Map(Vec::new()));
                }
                let first = self.literal()?;
                if self.eat_sym(":") {
                    let v = self.literal()?;
                    let mut entries = vec![(first, v)];
                    while self.eat_sym(",") {
                        let k = self.literal()?;
                        self.expect_sym(":")?;
                        entries.push((k, self.literal()?));
                    }
                    self.expect_sym("}")?;
                    Literal::Map(entries)
                } else {
                    let mut items = vec![first];
                    while self.eat_sym(",") {
                        items.push(self.literal()?);
                    }
                    self.expect_sym("}")?;
                    Literal::Set(items)
                }
            }
            Tok::Marker | Tok::NamedMarker(_) => {
                self.pos -= 1;
                return Err(CqlError::invalid(
                    "bind markers inside collection literals are not supported by ember-cql; bind the whole collection",
                ));
            }
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("a constant"));
            }
        })
    }

    fn using(&mut self) -> Result<Using> {
        let mut u = Using::default();
        if self.eat_kw("using") {
            loop {
                if self.eat_kw("ttl") {
                    u.ttl = Some(self.term()?);
                } else if self.eat_kw("timestamp") {
                    u.timestamp = Some(self.term()?);
                } else {
                    return Err(self.unexpected("TTL or TIMESTAMP"));
                }
                if !self.eat_kw("and") {
                    break;
                }
            }
        }
        Ok(u)
    }

    fn select(&mut self) -> Result<Select> {
        if self.eat_kw("json") {
            return Err(CqlError::syntax(
                "SELECT JSON is not supported by ember-cql",
            ));
        }
        let distinct = self.eat_kw("distinct");
        let mut selectors = Vec::new();
        if !self.eat_sym("*") {
            loop {
                let expr = match self.peek().clone() {
                    Tok::Ident(f, false)
                        if matches!(f.as_str(), "count" | "writetime" | "ttl" | "token")
                            && self.peek_at(1) == &Tok::Sym("(") =>
                    {
                        self.pos += 2;
                        let e = if f == "token" {
                            let mut cols = vec![self.ident()?];
                            while self.eat_sym(",") {
                                cols.push(self.ident()?);
                            }
                            SelectorExpr::Token(cols)
                        } else if f == "count" {
                            if !self.eat_sym("*") {
                                match self.next() {
                                    Tok::Int(s) if s == "1" => {}
                                    _ => {
                                        return Err(CqlError::invalid(
                                            "only COUNT(*) and COUNT(1) are supported by ember-cql",
                                        ));
                                    }
                                }
                            }
                            SelectorExpr::CountStar
                        } else {
                            let c = self.ident()?;
                            if f == "writetime" {
                                SelectorExpr::WriteTime(c)
                            } else {
                                SelectorExpr::Ttl(c)
                            }
                        };
                        self.expect_sym(")")?;
                        e
                    }
                    Tok::Ident(f, false) if self.peek_at(1) == &Tok::Sym("(") => {
                        return Err(CqlError::invalid(format!(
                            "Unknown function '{f}' (not supported by ember-cql)"
                        )));
                    }
                    _ => SelectorExpr::Column(self.ident()?),
                };
                let alias = if self.eat_kw("as") {
                    Some(self.ident()?)
                } else {
                    None
                };
                selectors.push(Selector { expr, alias });
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.expect_kw("from")?;
        let table = self.qname()?;
        let where_ = if self.eat_kw("where") {
            self.relations()?
        } else {
            Vec::new()
        };
        let mut order_by = Vec::new();
        if self.eat_kw("order") {
            self.expect_kw("by")?;
            loop {
                let c = self.ident()?;
                let desc = if self.eat_kw("desc") {
                    true
                } else {
                    self.eat_kw("asc");
                    false
                };
                order_by.push((c, desc));
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        let mut per_partition_limit = None;
        if self.is_kw("per") {
            self.pos += 1;
            self.expect_kw("partition")?;
            self.expect_kw("limit")?;
            per_partition_limit = Some(self.term()?);
        }
        let limit = if self.eat_kw("limit") {
            Some(self.term()?)
        } else {
            None
        };
        let allow_filtering = if self.eat_kw("allow") {
            self.expect_kw("filtering")?;
            true
        } else {
            false
        };
        Ok(Select {
            table,
            selectors,
            distinct,
            where_,
            order_by,
            limit,
            per_partition_limit,
            allow_filtering,
        })
    }

    fn relations(&mut self) -> Result<Vec<Relation>> {
        let mut out = Vec::new();
        loop {
            if self.peek() == &Tok::Sym("(") {
                return Err(CqlError::invalid(
                    "multi-column relations are not supported by ember-cql",
                ));
            }
            let mut token_of = None;
            let column = if self.is_kw("token") && self.peek_at(1) == &Tok::Sym("(") {
                self.pos += 2;
                let mut cols = Vec::new();
                loop {
                    cols.push(self.ident()?);
                    if self.eat_sym(")") {
                        break;
                    }
                    self.expect_sym(",")?;
                }
                token_of = Some(cols);
                String::new()
            } else {
                self.ident()?
            };
            let op = match self.next() {
                Tok::Sym("=") => Op::Eq,
                Tok::Sym("<") => Op::Lt,
                Tok::Sym("<=") => Op::Le,
                Tok::Sym(">") => Op::Gt,
                Tok::Sym(">=") => Op::Ge,
                Tok::Sym("!=") => Op::Ne,
                Tok::Ident(s, false) if s == "in" => Op::In,
                Tok::Ident(s, false) if s == "contains" => {
                    if self.eat_kw("key") {
                        Op::ContainsKey
                    } else {
                        Op::Contains
                    }
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("a relation operator"));
                }
            };
            let value = if op == Op::In && self.eat_sym("(") {
                let mut items = Vec::new();
                if !self.eat_sym(")") {
                    loop {
                        items.push(self.term()?);
                        if self.eat_sym(")") {
                            break;
                        }
                        self.expect_sym(",")?;
                    }
                }
                RelValue::List(items)
            } else {
                RelValue::One(self.term()?)
            };
            if token_of.is_some() && !matches!(op, Op::Eq | Op::Lt | Op::Le | Op::Gt | Op::Ge) {
                return Err(CqlError::invalid(
                    "token() supports only =, <, <=, > and >=",
                ));
            }
            out.push(Relation {
                column,
                op,
                value,
                token_of,
            });
            if !self.eat_kw("and") {
                break;
            }
        }
        Ok(out)
    }

    fn condition(&mut self) -> Result<Condition> {
        if self.if_exists()? {
            return Ok(Condition::IfExists);
        }
        if self.is_kw("if") {
            return Err(CqlError::invalid(
                "conditional updates (IF column = value) are not supported by ember-cql; only IF EXISTS / IF NOT EXISTS",
            ));
        }
        Ok(Condition::None)
    }

    fn insert(&mut self) -> Result<Insert> {
        self.expect_kw("into")?;
        let table = self.qname()?;
        if self.is_kw("json") {
            return Err(CqlError::syntax(
                "INSERT JSON is not supported by ember-cql",
            ));
        }
        self.expect_sym("(")?;
        let mut columns = Vec::new();
        loop {
            columns.push(self.ident()?);
            if self.eat_sym(")") {
                break;
            }
            self.expect_sym(",")?;
        }
        self.expect_kw("values")?;
        self.expect_sym("(")?;
        let mut values = Vec::new();
        loop {
            values.push(self.term()?);
            if self.eat_sym(")") {
                break;
            }
            self.expect_sym(",")?;
        }
        if columns.len() != values.len() {
            return Err(CqlError::invalid(format!(
                "Unmatched column names/values: {} columns, {} values",
                columns.len(),
                values.len()
            )));
        }
        let if_not_exists = self.if_not_exists()?;
        let using = self.using()?;
        let if_not_exists = if_not_exists || self.if_not_exists()?;
        Ok(Insert {
            table,
            columns,
            values,
            if_not_exists,
            using,
        })
    }

    fn update(&mut self) -> Result<Update> {
        let table = self.qname()?;
        let using = self.using()?;
        self.expect_kw("set")?;
        let mut assignments = Vec::new();
        loop {
            let c = self.ident()?;
            if self.eat_sym("[") {
                let key = self.term()?;
                self.expect_sym("]")?;
                self.expect_sym("=")?;
                assignments.push(Assignment::Element(c, key, self.term()?));
            } else {
                self.expect_sym("=")?;
                let self_ref = matches!(self.peek(), Tok::Ident(n, _) if *n == c)
                    && matches!(self.peek_at(1), Tok::Sym("+") | Tok::Sym("-"));
                if self_ref {
                    self.pos += 1;
                    let op = if self.next() == Tok::Sym("+") {
                        CollOp::Append
                    } else {
                        CollOp::Remove
                    };
                    assignments.push(Assignment::Collection(c, op, self.term()?));
                } else {
                    let t = self.term()?;
                    if self.eat_sym("+") {
                        let other = self.ident()?;
                        if other != c {
                            return Err(CqlError::invalid(format!(
                                "Only expressions of the form X = <value> + X are supported ({c} = ... + {other})"
                            )));
                        }
                        assignments.push(Assignment::Collection(c, CollOp::Prepend, t));
                    } else if self.peek() == &Tok::Sym("-") {
                        return Err(CqlError::invalid(format!(
                            "Only expressions of the form X = X - <value> are supported ({c})"
                        )));
                    } else {
                        assignments.push(Assignment::Set(c, t));
                    }
                }
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_kw("where")?;
        let where_ = self.relations()?;
        let condition = self.condition()?;
        Ok(Update {
            table,
            using,
            assignments,
            where_,
            condition,
        })
    }

    fn delete(&mut self) -> Result<Delete> {
        let mut columns = Vec::new();
        let mut elements = Vec::new();
        if !self.is_kw("from") {
            loop {
                let c = self.ident()?;
                if self.eat_sym("[") {
                    let key = self.term()?;
                    self.expect_sym("]")?;
                    elements.push((c, key));
                } else {
                    columns.push(c);
                }
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.expect_kw("from")?;
        let table = self.qname()?;
        let using = self.using()?;
        if using.ttl.is_some() {
            return Err(CqlError::invalid("DELETE does not support USING TTL"));
        }
        self.expect_kw("where")?;
        let where_ = self.relations()?;
        let condition = self.condition()?;
        Ok(Delete {
            table,
            columns,
            elements,
            using,
            where_,
            condition,
        })
    }

    fn string_map(&mut self) -> Result<Vec<(String, String)>> {
        self.expect_sym("{")?;
        let mut out = Vec::new();
        if self.eat_sym("}") {
            return Ok(out);
        }
        loop {
            let k = match self.literal()? {
                Literal::Str(s) => s,
                other => other.to_string(),
            };
            self.expect_sym(":")?;
            let v = match self.literal()? {
                Literal::Str(s) => s,
                other => other.to_string(),
            };
            out.push((k, v));
            if self.eat_sym("}") {
                break;
            }
            self.expect_sym(",")?;
        }
        Ok(out)
    }

    fn keyspace_props(&mut self) -> Result<KeyspaceProps> {
        let mut replication = None;
        let mut durable = None;
        loop {
            let prop = self.ident()?;
            self.expect_sym("=")?;
            match prop.as_str() {
                "replication" => replication = Some(self.string_map()?),
                "durable_writes" => {
                    durable = Some(match self.literal()? {
                        Literal::Bool(b) => b,
                        Literal::Str(s) => s.eq_ignore_ascii_case("true"),
                        other => {
                            return Err(CqlError::syntax(format!(
                                "invalid durable_writes value {other}"
                            )));
                        }
                    })
                }
                other => {
                    return Err(CqlError::syntax(format!("Unknown property '{other}'")));
                }
            }
            if !self.eat_kw("and") {
                break;
            }
        }
        Ok((replication, durable))
    }

    fn create_keyspace(&mut self) -> Result<Statement> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.ident()?;
        self.expect_kw("with")?;
        let (replication, durable) = self.keyspace_props()?;
        let replication = replication.ok_or_else(|| {
            CqlError::new(
                crate::error::CONFIG_ERROR,
                "Missing mandatory option 'replication'",
            )
        })?;
        Ok(Statement::CreateKeyspace {
            name,
            if_not_exists,
            replication,
            durable_writes: durable.unwrap_or(true),
        })
    }

    fn cql_type(&mut self) -> Result<CqlType> {
        let name = self.ident()?;
        let t = match name.as_str() {
            "frozen" => {
                self.expect_sym("<")?;
                let inner = self.cql_type()?;
                self.expect_sym(">")?;
                CqlType::Frozen(Box::new(inner))
            }
            "list" | "set" => {
                self.expect_sym("<")?;
                let inner = self.cql_type()?;
                self.expect_sym(">")?;
                if name == "list" {
                    CqlType::List(Box::new(inner))
                } else {
                    CqlType::Set(Box::new(inner))
                }
            }
            "map" => {
                self.expect_sym("<")?;
                let k = self.cql_type()?;
                self.expect_sym(",")?;
                let v = self.cql_type()?;
                self.expect_sym(">")?;
                CqlType::Map(Box::new(k), Box::new(v))
            }
            "tuple" => {
                return Err(CqlError::invalid(
                    "tuple types are not supported by ember-cql",
                ));
            }
            other => CqlType::from_name(other).ok_or_else(|| {
                CqlError::invalid(format!(
                    "Unknown type {other} (user-defined types are not supported by ember-cql)"
                ))
            })?,
        };
        Ok(t)
    }

    fn column_def(&mut self) -> Result<ColumnDefAst> {
        let name = self.ident()?;
        let ty = self.cql_type()?;
        let is_static = self.eat_kw("static");
        Ok(ColumnDefAst {
            name,
            ty,
            is_static,
        })
    }

    fn create_table(&mut self) -> Result<CreateTable> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.qname()?;
        self.expect_sym("(")?;
        let mut columns = Vec::new();
        let mut partition_key = Vec::new();
        let mut clustering = Vec::new();
        let mut pk_seen = false;
        loop {
            if self.is_kw("primary") && self.is_kw_at(1, "key") {
                self.pos += 2;
                if pk_seen {
                    return Err(CqlError::invalid(format!(
                        "Multiple PRIMARY KEYs specified for table {}",
                        name.name
                    )));
                }
                pk_seen = true;
                self.expect_sym("(")?;
                if self.eat_sym("(") {
                    loop {
                        partition_key.push(self.ident()?);
                        if self.eat_sym(")") {
                            break;
                        }
                        self.expect_sym(",")?;
                    }
                } else {
                    partition_key.push(self.ident()?);
                }
                while self.eat_sym(",") {
                    clustering.push(self.ident()?);
                }
                self.expect_sym(")")?;
            } else {
                let col = self.column_def()?;
                if self.is_kw("primary") {
                    self.pos += 1;
                    self.expect_kw("key")?;
                    if pk_seen {
                        return Err(CqlError::invalid(format!(
                            "Multiple PRIMARY KEYs specified for table {}",
                            name.name
                        )));
                    }
                    pk_seen = true;
                    partition_key.push(col.name.clone());
                }
                columns.push(col);
            }
            if self.eat_sym(")") {
                break;
            }
            self.expect_sym(",")?;
            // Allow a trailing comma before ')'.
            if self.eat_sym(")") {
                break;
            }
        }
        if !pk_seen {
            return Err(CqlError::invalid(format!(
                "No PRIMARY KEY specified for table {} (exactly one required)",
                name.name
            )));
        }
        let mut clustering_order = Vec::new();
        let mut options = Vec::new();
        if self.eat_kw("with") {
            loop {
                if self.eat_kw("clustering") {
                    self.expect_kw("order")?;
                    self.expect_kw("by")?;
                    self.expect_sym("(")?;
                    loop {
                        let c = self.ident()?;
                        let desc = if self.eat_kw("desc") {
                            true
                        } else {
                            self.expect_kw("asc")?;
                            false
                        };
                        clustering_order.push((c, desc));
                        if self.eat_sym(")") {
                            break;
                        }
                        self.expect_sym(",")?;
                    }
                } else if self.eat_kw("compact") {
                    self.expect_kw("storage")?;
                    return Err(CqlError::invalid(
                        "COMPACT STORAGE is not supported by ember-cql",
                    ));
                } else {
                    let prop = self.ident()?;
                    self.expect_sym("=")?;
                    let v = if self.peek() == &Tok::Sym("{") {
                        let m = self.string_map()?;
                        format!(
                            "{{{}}}",
                            m.iter()
                                .map(|(k, v)| format!("'{k}': '{v}'"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else {
                        match self.literal()? {
                            Literal::Str(s) => s,
                            other => other.to_string(),
                        }
                    };
                    options.push((prop, v));
                }
                if !self.eat_kw("and") {
                    break;
                }
            }
        }
        Ok(CreateTable {
            name,
            if_not_exists,
            columns,
            partition_key,
            clustering,
            clustering_order,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_statements() {
        let p = parse("CREATE TABLE IF NOT EXISTS spark_streams.dead_letters (topic text, partition int, offset bigint, job text, value blob, reason text, failed_at timestamp, PRIMARY KEY ((topic, partition), offset))").unwrap();
        match p.statement {
            Statement::CreateTable(ct) => {
                assert_eq!(ct.partition_key, vec!["topic", "partition"]);
                assert_eq!(ct.clustering, vec!["offset"]);
                assert_eq!(ct.columns.len(), 7);
            }
            other => panic!("{other:?}"),
        }
        let p = parse("INSERT INTO ks.t (a, b) VALUES (?, ?) USING TIMESTAMP ?").unwrap();
        assert_eq!(p.marker_names.len(), 3);
        let p = parse("select keyspace_name from system_schema.tables where keyspace_name in ?")
            .unwrap();
        assert_eq!(p.marker_names.len(), 1);
        assert!(parse("SELEC * FROM x").is_err());
        let p = parse("SELECT * FROM t WHERE id = 123e4567-e89b-12d3-a456-426614174000 AND c >= -5 LIMIT 10 ALLOW FILTERING;").unwrap();
        match p.statement {
            Statement::Select(s) => {
                assert!(s.allow_filtering);
                assert_eq!(s.where_.len(), 2);
                assert_eq!(
                    s.where_[1].value,
                    RelValue::One(Term::Lit(Literal::Int(-5)))
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
