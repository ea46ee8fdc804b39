//! Parameterized Cypher: the query text is a compile-time constant and every
//! value is sent as a `CYPHER name=value` parameter with its quoting done here,
//! the one place that has to get it right.

use crate::connection::Con;

use super::error::{GraphError, Result};
use super::reply::Reply;
use crate::schema;

/// A value passed as a query parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    StrList(Vec<String>),
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Str(s.to_owned())
    }
}

impl From<&String> for Param {
    fn from(s: &String) -> Self {
        Param::Str(s.clone())
    }
}

impl From<bool> for Param {
    fn from(b: bool) -> Self {
        Param::Bool(b)
    }
}

impl From<i64> for Param {
    fn from(i: i64) -> Self {
        Param::Int(i)
    }
}

impl From<&[String]> for Param {
    fn from(l: &[String]) -> Self {
        Param::StrList(l.to_vec())
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(o: Option<T>) -> Self {
        o.map_or(Param::Null, Into::into)
    }
}

/// A query: constant text plus named parameters.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    // `&'static str` so that no runtime data can ever become query text.
    cypher: &'static str,
    params: Vec<(&'static str, Param)>,
}

impl Query {
    pub(crate) fn new(cypher: &'static str) -> Self {
        Self {
            cypher,
            params: Vec::new(),
        }
    }

    pub(crate) fn param(mut self, name: &'static str, value: impl Into<Param>) -> Self {
        self.params.push((name, value.into()));
        self
    }

    /// The text sent to FalkorDB: `CYPHER a='x' b=1 <query>`.
    pub(crate) fn render(&self) -> Result<String> {
        let mut out = String::with_capacity(self.cypher.len() + 32 * self.params.len());
        if !self.params.is_empty() {
            out.push_str("CYPHER ");
            for (name, value) in &self.params {
                out.push_str(name);
                out.push('=');
                render_param(&mut out, name, value)?;
                out.push(' ');
            }
        }
        out.push_str(self.cypher);
        Ok(out)
    }

    /// Runs it with `GRAPH.QUERY` (may write).
    pub(crate) async fn write(&self, con: &mut Con, what: &str) -> Result<Reply> {
        run(con, "GRAPH.QUERY", self, what).await
    }

    /// Runs it with `GRAPH.RO_QUERY`: reads never create the graph key as a side
    /// effect, and a graph that does not exist yet reads as empty.
    pub(crate) async fn read(&self, con: &mut Con, what: &str) -> Result<Reply> {
        match run(con, "GRAPH.RO_QUERY", self, what).await {
            Err(GraphError::Redis { source, .. }) if is_empty_key(&source) => Ok(Reply::default()),
            other => other,
        }
    }
}

async fn run(con: &mut Con, command: &str, query: &Query, what: &str) -> Result<Reply> {
    let text = query.render()?;
    let value: redis::Value = redis::cmd(command)
        .arg(schema::graph())
        .arg(text)
        .arg("--compact")
        .query_async(con)
        .await
        .map_err(|source| {
            if is_unknown_command(&source) {
                GraphError::NoModule(format!(
                    "{command} is not a command of this server ({what})"
                ))
            } else {
                GraphError::Redis {
                    what: what.to_owned(),
                    source,
                }
            }
        })?;
    Reply::parse(value).map_err(|detail| GraphError::Reply {
        what: what.to_owned(),
        detail,
    })
}

fn render_param(out: &mut String, name: &str, value: &Param) -> Result<()> {
    match value {
        Param::Null => out.push_str("null"),
        Param::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Param::Int(i) => out.push_str(&i.to_string()),
        Param::Str(s) => quote(out, name, s)?,
        Param::StrList(items) => {
            out.push('[');
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote(out, name, s)?;
            }
            out.push(']');
        }
    }
    Ok(())
}

/// Appends `s` as a single-quoted Cypher string literal.
///
/// Inside a quoted literal only the quote and the escape character are special
/// to FalkorDB's parser, so escaping those two keeps any text a literal.
fn quote(out: &mut String, name: &str, s: &str) -> Result<()> {
    // The module hands the query to a C parser, which would end the text at a NUL.
    if s.contains('\0') {
        return Err(GraphError::Invalid {
            what: format!("value of `{name}`"),
            detail: "contains a NUL character".into(),
        });
    }
    out.push('\'');
    for ch in s.chars() {
        if ch == '\\' || ch == '\'' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('\'');
    Ok(())
}

fn is_unknown_command(e: &redis::RedisError) -> bool {
    e.to_string()
        .to_ascii_lowercase()
        .contains("unknown command")
}

fn is_empty_key(e: &redis::RedisError) -> bool {
    e.to_string().contains("empty key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(value: impl Into<Param>) -> String {
        Query::new("RETURN $v")
            .param("v", value)
            .render()
            .expect("renders")
    }

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(render("plain"), "CYPHER v='plain' RETURN $v");
        assert_eq!(render("it's"), r"CYPHER v='it\'s' RETURN $v");
        assert_eq!(render(r"back\slash"), r"CYPHER v='back\\slash' RETURN $v");
        assert_eq!(
            render("'}) DETACH DELETE n //"),
            r"CYPHER v='\'}) DETACH DELETE n //' RETURN $v"
        );
        assert_eq!(render(r"\'"), r"CYPHER v='\\\'' RETURN $v");
    }

    #[test]
    fn other_values_render_as_literals() {
        assert_eq!(render(true), "CYPHER v=true RETURN $v");
        assert_eq!(render(-42i64), "CYPHER v=-42 RETURN $v");
        assert_eq!(render(None::<&str>), "CYPHER v=null RETURN $v");
        let list = vec!["a".to_owned(), "b'c".to_owned()];
        assert_eq!(render(list.as_slice()), r"CYPHER v=['a','b\'c'] RETURN $v");
        assert_eq!(
            Query::new("RETURN 1").render().expect("renders"),
            "RETURN 1"
        );
    }

    #[test]
    fn nul_is_refused() {
        let err = Query::new("RETURN $v")
            .param("v", "a\0b")
            .render()
            .expect_err("NUL refused");
        assert!(err.to_string().contains("NUL"), "{err}");
    }
}
