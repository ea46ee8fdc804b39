//! The contact index: the order and filter of `Model::contacts`, kept in step
//! by `update` so that a frame or a message never sorts the whole list.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use super::{Contact, Model};

/// What `contacts` looks like sorted and filtered.
///
/// A frame or an incoming message must not sort or scan 10,000 contacts, so
/// `update` maintains this incrementally. Readers check it against the model
/// (count and filter) and recompute from scratch when it does not match, so a
/// model edited by hand stays correct, only slower.
#[derive(Clone, Debug, Default)]
pub(super) struct ContactIndex {
    by_id: HashMap<String, usize>,
    /// Indices into `contacts`, most recent activity first, ties by id.
    order: Vec<usize>,
    /// The filter `visible` was built for, lower-cased.
    filter: String,
    /// Indices in display order matching `filter`; unused when it is empty.
    visible: Vec<usize>,
}

impl Contact {
    fn matches(&self, needle_lower: &str) -> bool {
        needle_lower.is_empty()
            || self.id.to_lowercase().contains(needle_lower)
            || self
                .name
                .as_deref()
                .is_some_and(|n| n.to_lowercase().contains(needle_lower))
    }
}

impl Model {
    /// Contacts after the filter, most recent activity first (ties by id).
    pub fn visible_contacts(&self) -> Vec<&Contact> {
        self.visible_indices()
            .iter()
            .filter_map(|&i| self.contacts.get(i))
            .collect()
    }

    /// How many contacts pass the filter.
    pub fn visible_len(&self) -> usize {
        self.visible_indices().len()
    }

    /// Up to `count` visible contacts starting at row `start`, in display order.
    pub fn visible_window(&self, start: usize, count: usize) -> Vec<&Contact> {
        self.visible_indices()
            .iter()
            .skip(start)
            .take(count)
            .filter_map(|&i| self.contacts.get(i))
            .collect()
    }

    /// Index into `visible_contacts` of the selection; falls back to the first row.
    pub fn selected_index(&self) -> Option<usize> {
        let list = self.visible_indices();
        if list.is_empty() {
            return None;
        }
        let found = self
            .selected
            .as_deref()
            .and_then(|id| self.position_in(&list, id));
        Some(found.unwrap_or(0))
    }

    /// The contact that actions apply to, consistent with what is highlighted.
    pub fn selected_contact(&self) -> Option<&Contact> {
        let idx = self.selected_index()?;
        let list = self.visible_indices();
        self.contacts.get(*list.get(idx)?)
    }

    /// Looks up a contact by id.
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.get(self.contact_slot(id)?)
    }

    /// Rebuilds the sorted index of `contacts` (what `update` does after a snapshot).
    pub fn reindex(&mut self) {
        let mut order: Vec<usize> = (0..self.contacts.len()).collect();
        order.sort_by(|&a, &b| recency(&self.contacts[a], &self.contacts[b]));
        self.index.by_id = self
            .contacts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        self.index.order = order;
        self.refilter();
    }

    /// Recomputes the filtered rows after `filter` changed.
    pub(crate) fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        self.index.visible = if needle.is_empty() {
            Vec::new()
        } else {
            let contacts = &self.contacts;
            self.index
                .order
                .iter()
                .copied()
                .filter(|&i| contacts.get(i).is_some_and(|c| c.matches(&needle)))
                .collect()
        };
        self.index.filter = needle;
    }

    /// Position in `contacts` of the contact with this id.
    pub(crate) fn contact_slot(&self, id: &str) -> Option<usize> {
        match self.index.by_id.get(id) {
            Some(&i) if self.contacts.get(i).is_some_and(|c| c.id == id) => Some(i),
            _ => self.contacts.iter().position(|c| c.id == id),
        }
    }

    /// Adds a contact and files it in the index; returns its position in `contacts`.
    pub(crate) fn add_contact(&mut self, contact: Contact) -> usize {
        if !self.index_is_current() {
            self.contacts.push(contact);
            self.reindex();
            return self.contacts.len() - 1;
        }
        let slot = self.contacts.len();
        let matches = !self.index.filter.is_empty() && contact.matches(&self.index.filter);
        self.index.by_id.insert(contact.id.clone(), slot);
        self.contacts.push(contact);
        let contacts = &self.contacts;
        let new = &contacts[slot];
        let at = partition(&self.index.order, contacts, new);
        self.index.order.insert(at, slot);
        if matches {
            let at = partition(&self.index.visible, contacts, new);
            self.index.visible.insert(at, slot);
        }
        slot
    }

    /// Raises a contact's last activity to `at_ms` and moves it to its new row.
    pub(crate) fn touch(&mut self, slot: usize, at_ms: i64) {
        let Some(before) = self.contacts.get(slot) else {
            return;
        };
        if at_ms <= before.last_activity_ms {
            return;
        }
        if !self.index_is_current() {
            self.contacts[slot].last_activity_ms = at_ms;
            self.reindex();
            return;
        }
        let in_order = self
            .index
            .order
            .binary_search_by(|&j| recency(&self.contacts[j], before));
        let in_visible = if self.index.filter.is_empty() {
            None
        } else {
            self.index
                .visible
                .binary_search_by(|&j| recency(&self.contacts[j], before))
                .ok()
        };
        self.contacts[slot].last_activity_ms = at_ms;
        let Ok(from) = in_order else {
            // The index no longer matches the data; start over rather than misfile.
            self.reindex();
            return;
        };
        let contacts = &self.contacts;
        reposition(&mut self.index.order, from, contacts, slot);
        if let Some(from) = in_visible {
            reposition(&mut self.index.visible, from, contacts, slot);
        }
    }

    /// Whether the index describes the current contacts and filter.
    fn index_is_current(&self) -> bool {
        self.index.order.len() == self.contacts.len()
            && self.index.filter == self.filter.to_lowercase()
    }

    /// Visible rows as indices into `contacts`, from the index when it is current.
    pub(crate) fn visible_indices(&self) -> Cow<'_, [usize]> {
        if self.index_is_current() {
            return Cow::Borrowed(if self.index.filter.is_empty() {
                &self.index.order
            } else {
                &self.index.visible
            });
        }
        let needle = self.filter.to_lowercase();
        let mut list: Vec<usize> = (0..self.contacts.len())
            .filter(|&i| self.contacts[i].matches(&needle))
            .collect();
        list.sort_by(|&a, &b| recency(&self.contacts[a], &self.contacts[b]));
        Cow::Owned(list)
    }

    /// Row of contact `id` in `list` (sorted by recency), by binary search.
    fn position_in(&self, list: &[usize], id: &str) -> Option<usize> {
        let target = self.contact(id)?;
        list.binary_search_by(|&j| recency(&self.contacts[j], target))
            .ok()
            .or_else(|| {
                list.iter()
                    .position(|&j| self.contacts.get(j).is_some_and(|c| c.id == id))
            })
    }
}

/// Display order: most recent activity first, ties by id.
fn recency(a: &Contact, b: &Contact) -> Ordering {
    b.last_activity_ms
        .cmp(&a.last_activity_ms)
        .then_with(|| a.id.cmp(&b.id))
}

/// Where `c` goes in `list` (sorted by recency).
fn partition(list: &[usize], contacts: &[Contact], c: &Contact) -> usize {
    list.partition_point(|&j| recency(&contacts[j], c) == Ordering::Less)
}

/// Moves the entry at `from` (contact `slot`, whose key changed) to its sorted
/// row with one rotation, as a new message mostly moves a contact a short way up.
fn reposition(list: &mut [usize], from: usize, contacts: &[Contact], slot: usize) {
    let moved = &contacts[slot];
    let sorts_before = |&j: &usize| recency(&contacts[j], moved) == Ordering::Less;
    let before = list[..from].partition_point(sorts_before);
    if before < from {
        list[before..=from].rotate_right(1);
        return;
    }
    let after = list[from + 1..].partition_point(sorts_before);
    if after > 0 {
        list[from..=from + after].rotate_left(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order a full sort gives, to hold the incremental index against.
    fn sorted_ids(model: &Model) -> Vec<String> {
        let needle = model.filter.to_lowercase();
        let mut list: Vec<&Contact> = model
            .contacts
            .iter()
            .filter(|c| c.matches(&needle))
            .collect();
        list.sort_by(|a, b| recency(a, b));
        list.into_iter().map(|c| c.id.clone()).collect()
    }

    fn shown_ids(model: &Model) -> Vec<String> {
        model
            .visible_contacts()
            .into_iter()
            .map(|c| c.id.clone())
            .collect()
    }

    #[test]
    fn incremental_order_matches_a_full_sort() {
        let mut model = Model {
            contacts: (0..50)
                .map(|i| Contact {
                    last_activity_ms: (i * 7919) % 100,
                    ..Contact::new(format!("c{i:02}"))
                })
                .collect(),
            ..Model::default()
        };
        model.reindex();
        let mut seed = 12345u64;
        for step in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (seed >> 33) as usize;
            if step == 700 {
                model.filter = "1".into();
                model.refilter();
            }
            if r.is_multiple_of(10) {
                model.add_contact(Contact {
                    last_activity_ms: (r % 300) as i64,
                    ..Contact::new(format!("n{step}"))
                });
            } else {
                let slot = r % model.contacts.len();
                model.touch(slot, (r % 3000) as i64);
            }
            assert!(model.index_is_current());
            assert_eq!(shown_ids(&model), sorted_ids(&model), "step {step}");
        }
        assert!(
            model.visible_len() < model.contacts.len(),
            "the filter hid some"
        );
    }

    #[test]
    fn a_hand_edited_model_is_still_listed_correctly() {
        let mut model = Model {
            contacts: vec![Contact::new("b"), Contact::new("a")],
            ..Model::default()
        };
        model.reindex();
        model.contacts.push(Contact {
            last_activity_ms: 5,
            ..Contact::new("c")
        });
        model.filter = "C".into();
        assert_eq!(shown_ids(&model), vec!["c"]);
        model.filter.clear();
        assert_eq!(shown_ids(&model), vec!["c", "a", "b"]);
        model.selected = Some("a".into());
        assert_eq!(model.selected_index(), Some(1));
        assert_eq!(model.contact("c").map(|c| c.last_activity_ms), Some(5));
    }
}
