//! Finding the past exchanges most like a message: BM25 over what the contact
//! wrote, no model needed.
//!
//! Texts are read as [`super::words`] reads them (lowercase, accents folded,
//! each emoji a term). The score is Okapi BM25 with k1 = 1.2 and b = 0.75 and
//! the IDF that never goes negative, ln(1 + (N − n + 0.5)/(n + 0.5)), each
//! distinct query term counted once. A past message that reads exactly like
//! the query (the same terms in the same order) comes first whatever its score,
//! since BM25 alone can prefer a longer message that repeats a query word;
//! then the higher score, then the newer exchange.
//!
//! A hit's similarity is symmetric: the IDF-weighted Jaccard index of the two
//! texts' distinct terms, shared / (query + exchange − shared), each side
//! weighed by the IDF of its terms (a query term no exchange holds weighing as
//! the rarest). 1 when both hold the same terms, in `0..=1`; a short query
//! found inside a long message scores low, as does a long query that holds a
//! short message, so "ok" is not "like" a paragraph that happens to say ok.

use std::collections::HashMap;

use super::Exchange;
use super::words;

/// BM25's term frequency saturation.
const K1: f32 = 1.2;
/// BM25's length normalisation.
const B: f32 = 0.75;

/// One found exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Its position in the indexed exchanges.
    pub exchange: usize,
    /// Its BM25 score.
    pub score: f32,
    /// How alike the query and the exchange are, `0..=1`: the IDF-weighted
    /// Jaccard index of their terms (1: the same terms).
    pub similarity: f32,
}

/// A term's occurrences in one exchange.
#[derive(Debug, Clone, Copy)]
struct Posting {
    /// The exchange.
    doc: u32,
    /// BM25's term frequency part, tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avg)),
    /// computed once when indexing (it depends on the exchange only).
    weight: f32,
}

/// A found exchange before it becomes a [`Hit`]: score, time, position.
type Found = (f32, i64, u32);

/// An inverted index over the contact side of exchanges.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Each term's id.
    terms: HashMap<String, u32>,
    /// Where each term's postings start in `postings` (one more entry than
    /// terms: the last is the end).
    starts: Vec<u32>,
    /// Every term's postings, term after term, by exchange.
    postings: Vec<Posting>,
    /// Each term's IDF.
    idf: Vec<f32>,
    /// Each exchange's weight: the IDF of its distinct terms, summed in term order.
    weight: Vec<f32>,
    /// Each exchange's time, to prefer the newer of equal scores.
    ts: Vec<i64>,
    /// Each exchange's shape (a hash of its terms in order) and position,
    /// sorted: the exchanges that repeat a query exactly.
    shapes: Vec<(u64, u32)>,
}

impl Index {
    /// Indexes `exchanges` (by their `them` text).
    pub fn new(exchanges: &[Exchange]) -> Self {
        let mut terms: HashMap<String, u32> = HashMap::new();
        let mut by_term: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut index = Index::default();
        let mut lens = Vec::with_capacity(exchanges.len());
        let mut ids = Vec::new();
        for (doc, exchange) in (0u32..).zip(exchanges) {
            ids.clear();
            words::scan(&exchange.them, |_, _, norm| {
                let id = match terms.get(norm) {
                    Some(id) => *id,
                    None => {
                        let id = terms.len() as u32;
                        terms.insert(norm.to_owned(), id);
                        by_term.push(Vec::new());
                        id
                    }
                };
                ids.push(id);
            });
            index.shapes.push((shape(&ids), doc));
            lens.push(ids.len() as f32);
            index.ts.push(exchange.ts);
            ids.sort_unstable();
            for run in ids.chunk_by(|a, b| a == b) {
                by_term[run[0] as usize].push((doc, run.len() as u32));
            }
        }
        index.shapes.sort_unstable();
        let docs = exchanges.len() as f32;
        let avg = lens.iter().sum::<f32>() / docs.max(1.0);
        let weight = |doc: u32, tf: u32| {
            let (tf, len) = (tf as f32, lens[doc as usize]);
            let norm = if avg > 0.0 { len / avg } else { 1.0 };
            tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * norm))
        };
        index.starts.push(0);
        for list in by_term {
            index.idf.push(idf(docs, list.len() as f32));
            let postings = list.into_iter().map(|(doc, tf)| Posting {
                doc,
                weight: weight(doc, tf),
            });
            index.postings.extend(postings);
            index.starts.push(index.postings.len() as u32);
        }
        index.weight = vec![0.0; exchanges.len()];
        for (term, idf) in index.idf.iter().enumerate() {
            let (from, to) = (index.starts[term], index.starts[term + 1]);
            for p in &index.postings[from as usize..to as usize] {
                index.weight[p.doc as usize] += idf;
            }
        }
        index.terms = terms;
        index
    }

    /// Exchanges indexed.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// No exchange is indexed.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The `k` best exchanges for `query`, best first; none when nothing matches.
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        let query = self.read_query(query);
        if k == 0 || query.known.is_empty() {
            return Vec::new();
        }
        let mut score = vec![0f32; self.len()];
        let mut touched = Vec::new();
        for &term in &query.known {
            let idf = self.idf[term as usize];
            for p in self.postings_of(term) {
                let s = &mut score[p.doc as usize];
                if *s == 0.0 {
                    touched.push(p.doc);
                }
                *s += idf * p.weight;
            }
        }
        let found = |doc: &u32| (score[*doc as usize], self.ts[*doc as usize], *doc);
        let repeats = self.repeats(query.shape);
        let mut first: Vec<Found> = repeats.iter().map(found).collect();
        best(&mut first, k);
        let is_repeat = |doc: &&u32| repeats.binary_search(doc).is_ok();
        let mut rest: Vec<Found> = touched
            .iter()
            .filter(|d| !is_repeat(d))
            .map(found)
            .collect();
        best(&mut rest, k - first.len());
        first.extend(rest);
        let hit = |(score, _, doc): Found| Hit {
            exchange: doc as usize,
            score,
            similarity: self.similarity(doc, &query),
        };
        first.into_iter().map(hit).collect()
    }

    /// The distinct terms of `query`, and its shape when the index knows every
    /// term of it (only then can an exchange repeat it).
    fn read_query(&self, query: &str) -> Query {
        let mut seq = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        words::scan(query, |_, _, norm| match self.terms.get(norm) {
            Some(id) => seq.push(*id),
            None if unknown.iter().any(|u| u == norm) => {}
            None => unknown.push(norm.to_owned()),
        });
        let shape = unknown.is_empty().then(|| shape(&seq));
        seq.sort_unstable();
        seq.dedup();
        let unseen = idf(self.len() as f32, 0.0) * unknown.len() as f32;
        let idf_total = seq.iter().map(|t| self.idf[*t as usize]).sum::<f32>() + unseen;
        Query {
            known: seq,
            shape,
            idf_total,
        }
    }

    /// The exchanges of the given shape, in order.
    fn repeats(&self, shape: Option<u64>) -> Vec<u32> {
        let Some(shape) = shape else {
            return Vec::new();
        };
        let from = self.shapes.partition_point(|(s, _)| *s < shape);
        let same = self.shapes[from..].iter().take_while(|(s, _)| *s == shape);
        same.map(|(_, doc)| *doc).collect()
    }

    /// The IDF-weighted Jaccard index of `query` and `doc`'s terms.
    fn similarity(&self, doc: u32, query: &Query) -> f32 {
        let shared = self.matched(doc, &query.known);
        let union = query.idf_total + self.weight[doc as usize] - shared;
        if union <= 0.0 {
            return 0.0;
        }
        (shared / union).clamp(0.0, 1.0)
    }

    /// The IDF of the query terms found in `doc`.
    fn matched(&self, doc: u32, terms: &[u32]) -> f32 {
        let has = |t: &&u32| {
            self.postings_of(**t)
                .binary_search_by_key(&doc, |p| p.doc)
                .is_ok()
        };
        terms
            .iter()
            .filter(has)
            .map(|t| self.idf[*t as usize])
            .sum()
    }

    /// The postings of `term`.
    fn postings_of(&self, term: u32) -> &[Posting] {
        let t = term as usize;
        &self.postings[self.starts[t] as usize..self.starts[t + 1] as usize]
    }
}

/// A query as the index reads it.
struct Query {
    /// Its distinct terms that the index knows, in id order.
    known: Vec<u32>,
    /// Its shape, when the index knows every term of it.
    shape: Option<u64>,
    /// The IDF of all its distinct terms, known or not.
    idf_total: f32,
}

/// The IDF of a term found in `n` of `docs` exchanges (never negative; a term
/// found nowhere weighs the most).
fn idf(docs: f32, n: f32) -> f32 {
    (1.0 + (docs - n + 0.5) / (n + 0.5)).ln()
}

/// A hash of a sequence of term ids and its length (FNV-1a over their bytes).
fn shape(ids: &[u32]) -> u64 {
    let len = ids.len() as u32;
    let bytes: Vec<u8> = std::iter::once(len)
        .chain(ids.iter().copied())
        .flat_map(u32::to_le_bytes)
        .collect();
    crate::stable_hash::fnv1a64(&bytes)
}

/// Keeps the `k` best of `found` (higher score, then newer, then later in the
/// chat), best first.
fn best(found: &mut Vec<Found>, k: usize) {
    let order = |a: &Found, b: &Found| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2));
    if k == 0 {
        found.clear();
        return;
    }
    if found.len() > k {
        found.select_nth_unstable_by(k - 1, order);
        found.truncate(k);
    }
    found.sort_unstable_by(order);
}

#[cfg(test)]
mod tests;
