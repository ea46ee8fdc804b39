//! FalkorDB's `--compact` reply: `[header, rows, stats]`, or `[stats]` for a
//! query that returns nothing. Compact, because the plain reply prints a list as
//! one string (`[a, b]`) and its `toJSON` does not escape quotes, so lists of
//! free text only survive the typed compact form.

use redis::Value;

/// One query's result.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<Cell>>,
    pub(crate) stats: Vec<String>,
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<Cell>),
}

static NULL: Cell = Cell::Null;

// Value types of the compact protocol.
const NULL_T: i64 = 1;
const STRING_T: i64 = 2;
const INTEGER_T: i64 = 3;
const BOOLEAN_T: i64 = 4;
const DOUBLE_T: i64 = 5;
const ARRAY_T: i64 = 6;

impl Reply {
    pub(crate) fn parse(value: Value) -> Result<Self, String> {
        let parts = into_items(value).ok_or("the reply is not an array")?;
        match parts.len() {
            1 => Ok(Self {
                stats: strings(parts.into_iter().next())?,
                ..Self::default()
            }),
            3 => {
                let mut parts = parts.into_iter();
                let header = into_items(parts.next().unwrap_or(Value::Nil))
                    .ok_or("the header is not an array")?
                    .into_iter()
                    .map(|column| typed(column).and_then(|(_, name)| text(name)))
                    .collect::<Result<Vec<_>, String>>()?;
                let rows = into_items(parts.next().unwrap_or(Value::Nil))
                    .ok_or("the rows are not an array")?
                    .into_iter()
                    .map(|row| {
                        into_items(row)
                            .ok_or_else(|| "a row is not an array".to_owned())
                            .and_then(|cells| cells.into_iter().map(Cell::from_compact).collect())
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let stats = strings(parts.next())?;
                Ok(Self {
                    header,
                    rows,
                    stats,
                })
            }
            n => Err(format!("{n} parts instead of 1 or 3")),
        }
    }

    /// A counter of the statistics (`Nodes created: 3` → 3), 0 when absent.
    pub(crate) fn stat(&self, name: &str) -> u64 {
        self.stats
            .iter()
            .filter_map(|s| s.split_once(": "))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Cell {
    /// A `[type, value]` pair.
    fn from_compact(value: Value) -> Result<Self, String> {
        let (kind, value) = typed(value)?;
        Ok(match kind {
            NULL_T => Cell::Null,
            STRING_T => Cell::Str(text(value)?),
            INTEGER_T => match value {
                Value::Int(i) => Cell::Int(i),
                other => Cell::Int(
                    text(other)?
                        .parse()
                        .map_err(|_| "an integer is not a number".to_owned())?,
                ),
            },
            BOOLEAN_T => match value {
                Value::Boolean(b) => Cell::Bool(b),
                other => match text(other)?.as_str() {
                    "true" => Cell::Bool(true),
                    "false" => Cell::Bool(false),
                    t => return Err(format!("a boolean reads {t:?}")),
                },
            },
            DOUBLE_T => match value {
                Value::Double(d) => Cell::Double(d),
                other => Cell::Double(
                    text(other)?
                        .parse()
                        .map_err(|_| "a double is not a number".to_owned())?,
                ),
            },
            ARRAY_T => Cell::List(
                into_items(value)
                    .ok_or("an array value is not an array")?
                    .into_iter()
                    .map(Cell::from_compact)
                    .collect::<Result<_, _>>()?,
            ),
            // Nodes, edges, paths, maps, points: no query here returns them.
            other => return Err(format!("unsupported value type {other}")),
        })
    }

    /// The `i`-th cell of a row, `Null` past its end.
    pub(crate) fn at(row: &[Cell], i: usize) -> &Cell {
        row.get(i).unwrap_or(&NULL)
    }

    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Cell::Str(s) => Some(s.clone()),
            Cell::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            Cell::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A list of strings; a missing property is an empty list.
    pub(crate) fn strings(&self) -> Result<Vec<String>, String> {
        match self {
            Cell::Null => Ok(Vec::new()),
            Cell::List(items) => items
                .iter()
                .map(|item| match item {
                    Cell::Str(s) => Ok(s.clone()),
                    other => Err(format!("a list holds {other:?} instead of a string")),
                })
                .collect(),
            other => Err(format!("expected a list, got {other:?}")),
        }
    }
}

fn typed(value: Value) -> Result<(i64, Value), String> {
    let mut pair = into_items(value)
        .filter(|items| items.len() == 2)
        .ok_or("a value is not a [type, value] pair")?
        .into_iter();
    let kind = match pair.next() {
        Some(Value::Int(kind)) => kind,
        _ => return Err("a value type is not an integer".into()),
    };
    Ok((kind, pair.next().unwrap_or(Value::Nil)))
}

fn text(value: Value) -> Result<String, String> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|_| "a value is not UTF-8".to_owned())
        }
        Value::SimpleString(s) => Ok(s),
        Value::VerbatimString { text, .. } => Ok(text),
        Value::ServerError(e) => Err(format!("error inside the reply: {e:?}")),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

fn into_items(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

fn strings(value: Option<Value>) -> Result<Vec<String>, String> {
    into_items(value.unwrap_or(Value::Nil))
        .ok_or("the header or statistics are not an array")?
        .into_iter()
        .map(text)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn pair(kind: i64, v: Value) -> Value {
        Value::Array(vec![Value::Int(kind), v])
    }

    #[test]
    fn parses_a_compact_result_set() {
        let reply = Reply::parse(Value::Array(vec![
            Value::Array(vec![
                pair(1, bulk("c.id")),
                pair(1, bulk("c.botEnabled")),
                pair(1, bulk("n")),
                pair(1, bulk("l")),
            ]),
            Value::Array(vec![Value::Array(vec![
                pair(STRING_T, bulk("mom")),
                pair(BOOLEAN_T, bulk("true")),
                pair(INTEGER_T, Value::Int(3)),
                pair(
                    ARRAY_T,
                    Value::Array(vec![
                        pair(STRING_T, bulk("a, b")),
                        pair(STRING_T, bulk("\"\\")),
                    ]),
                ),
            ])]),
            Value::Array(vec![bulk("Nodes created: 2"), bulk("Cached execution: 1")]),
        ]))
        .expect("parses");
        assert_eq!(reply.header, ["c.id", "c.botEnabled", "n", "l"]);
        let row = &reply.rows[0];
        assert_eq!(Cell::at(row, 0).text().as_deref(), Some("mom"));
        assert_eq!(Cell::at(row, 1).bool(), Some(true));
        assert_eq!(Cell::at(row, 2).int(), Some(3));
        assert_eq!(Cell::at(row, 3).strings().expect("list"), ["a, b", "\"\\"]);
        assert_eq!(Cell::at(row, 9), &Cell::Null);
        assert!(Cell::Null.strings().expect("empty").is_empty());
        assert_eq!(reply.stat("Nodes created"), 2);
        assert_eq!(reply.stat("Relationships created"), 0);
    }

    #[test]
    fn parses_statistics_only() {
        let reply = Reply::parse(Value::Array(vec![Value::Array(vec![bulk(
            "Properties set: 4",
        )])]))
        .expect("parses");
        assert!(reply.rows.is_empty());
        assert_eq!(reply.stat("Properties set"), 4);
    }

    #[test]
    fn refuses_other_shapes() {
        assert!(Reply::parse(bulk("OK")).is_err());
        assert!(Reply::parse(Value::Array(vec![Value::Nil, Value::Nil])).is_err());
        let node = Value::Array(vec![
            Value::Array(vec![pair(1, bulk("n"))]),
            Value::Array(vec![Value::Array(vec![pair(8, Value::Array(vec![]))])]),
            Value::Array(vec![]),
        ]);
        assert!(Reply::parse(node).is_err());
    }
}
