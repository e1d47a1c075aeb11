//! A bounded summary of a file's failures, built one failure at a time: counts per reason
//! category and the first few lines of each, whatever the number of failures.

use serde::{Deserialize, Serialize};

/// How many example lines are kept per category.
pub const SAMPLES_PER_CATEGORY: usize = 5;
/// How many distinct categories are kept; later ones are counted under [`OTHER_CATEGORY`].
pub const MAX_CATEGORIES: usize = 20;
/// Where failures of categories past [`MAX_CATEGORIES`] are counted.
pub const OTHER_CATEGORY: &str = "other reasons";
/// Longest example reason kept, in characters.
const MAX_REASON_CHARS: usize = 300;
/// Longest category name kept, in characters.
const MAX_CATEGORY_CHARS: usize = 120;

/// One example failure: the upload's line and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSample {
    /// The line of the upload where the row starts.
    pub line: u64,
    /// The reason, as written in the failure CSV (possibly shortened).
    pub reason: String,
}

/// The failures of one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategorySummary {
    /// The category, e.g. `invalid e-mail address` or `API error 1003`.
    pub category: String,
    /// How many rows failed for it.
    pub count: u64,
    /// The first few of them.
    pub samples: Vec<FailureSample>,
}

/// Counts per category (in order of first appearance) and the first lines of each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSummary {
    categories: Vec<CategorySummary>,
    total: u64,
    excel_damage: bool,
    excel_signs: Vec<String>,
}

impl FailureSummary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one failed row.
    pub fn add(&mut self, category: &str, line: u64, reason_text: &str) {
        self.total += 1;
        let category = shorten(category.trim(), MAX_CATEGORY_CHARS);
        let index = match self.categories.iter().position(|c| c.category == category) {
            Some(i) => i,
            None if self.categories.len() < MAX_CATEGORIES => {
                self.categories.push(CategorySummary {
                    category,
                    count: 0,
                    samples: Vec::new(),
                });
                self.categories.len() - 1
            }
            None => match self
                .categories
                .iter()
                .position(|c| c.category == OTHER_CATEGORY)
            {
                Some(i) => i,
                None => {
                    self.categories.push(CategorySummary {
                        category: OTHER_CATEGORY.to_owned(),
                        count: 0,
                        samples: Vec::new(),
                    });
                    self.categories.len() - 1
                }
            },
        };
        let entry = &mut self.categories[index];
        entry.count += 1;
        if entry.samples.len() < SAMPLES_PER_CATEGORY {
            entry.samples.push(FailureSample {
                line,
                reason: shorten(reason_text, MAX_REASON_CHARS),
            });
        }
    }

    /// Marks the failures as looking like Excel damage (the message then gives Excel advice).
    pub fn set_excel_damage(&mut self, damaged: bool) {
        self.excel_damage = damaged;
    }

    /// Marks Excel damage and remembers what showed it (`ids in scientific notation`…; the
    /// first three distinct signs are kept and named in the message).
    pub fn note_excel_damage(&mut self, sign: &str) {
        self.excel_damage = true;
        if self.excel_signs.len() < 3 && !self.excel_signs.iter().any(|s| s == sign) {
            self.excel_signs.push(shorten(sign, MAX_CATEGORY_CHARS));
        }
    }

    /// Whether the failures look like Excel damage.
    pub fn excel_damage(&self) -> bool {
        self.excel_damage
    }

    /// What showed the Excel damage, if the caller said.
    pub fn excel_signs(&self) -> &[String] {
        &self.excel_signs
    }

    /// Every failed row counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The categories, in order of first appearance.
    pub fn categories(&self) -> &[CategorySummary] {
        &self.categories
    }

    /// Whether no failure was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// `text` cut to `max` characters (with `…`), control characters replaced by spaces.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_first_lines_per_category() {
        let mut s = FailureSummary::new();
        for line in 2..100 {
            s.add("invalid e-mail", line, "email: not an e-mail address");
        }
        s.add("duplicate unique_id", 7, "unique_id 12 repeats line 3");
        assert_eq!(s.total(), 99);
        assert_eq!(s.categories().len(), 2);
        assert_eq!(s.categories()[0].count, 98);
        let lines: Vec<u64> = s.categories()[0].samples.iter().map(|x| x.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6]);
        assert_eq!(s.categories()[1].samples[0].line, 7);
    }

    #[test]
    fn categories_are_bounded() {
        let mut s = FailureSummary::new();
        for i in 0..1000u64 {
            s.add(&format!("API error {i}"), i, "x");
        }
        assert_eq!(s.categories().len(), MAX_CATEGORIES + 1);
        let other = s.categories().last().unwrap();
        assert_eq!(other.category, OTHER_CATEGORY);
        assert_eq!(other.count, 1000 - MAX_CATEGORIES as u64);
        assert_eq!(s.total(), 1000);
    }

    #[test]
    fn long_reasons_are_shortened() {
        let mut s = FailureSummary::new();
        s.add("c", 1, &"x\n".repeat(1000));
        let r = &s.categories()[0].samples[0].reason;
        assert_eq!(r.chars().count(), MAX_REASON_CHARS + 1);
        assert!(!r.contains('\n'));
    }
}
