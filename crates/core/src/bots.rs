//! Bot filtering: whether a user agent is a well-known crawler, monitor or headless browser,
//! so that ingest drops its events before routing (and counts them) when the workspace's
//! `bot_filter` is on (the default), as Stape and PostHog do.
//!
//! The patterns are the list of the npm package `isbot` 5.2.4 (Omri Lotan and contributors,
//! <https://github.com/omrilotan/isbot>, released into the public domain under the Unlicense:
//! `bots/isbot-LICENSE.md`), copied unchanged as data into `bots/isbot-5.2.4-patterns.json`
//! from the package's `list` export (tarball integrity `sha512-qFPSy82nnxEUrHdKpIQPVpYwsGJq…`).
//! To update: `npm pack isbot@<version>`, write its `list` export to a new file and the
//! verdicts of `isbot()` on the test user agents to another, change the `include_str!`s and
//! this paragraph.
//!
//! isbot joins the patterns into one case-insensitive JavaScript regular expression. Rust's
//! `regex` has no look-around, which six patterns use (`(?<!cam)scan`, `java(?!;)`): those
//! are split into a core expression and literal look-behind / regex look-ahead guards checked
//! around each core match. Every other pattern goes into one compiled expression, matched
//! over bytes with ASCII classes and case folding as JavaScript's `\w`, `\d`, `\b` and the `i`
//! flag have them (user agents are ASCII in practice).

use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder};

const PATTERNS: &str = include_str!("bots/isbot-5.2.4-patterns.json");

/// Whether `user_agent` is a known crawler's (isbot's list). An empty one is not.
///
/// The last [`RECENT`] verdicts are kept per thread: the events of a batch nearly always share
/// one user agent (the server SDK's, or the browser's), or a few (a server relaying its
/// visitors' events), and matching the whole list was 1.7 % of `serve`'s core under `make
/// measure-ingest` (by `perf`), once per event; with one verdict kept, a batch of five
/// visitors' agents interleaved still matched the list for most of its events (2.3 % of the
/// by-reference pipeline in `make bench`).
pub fn is_crawler(user_agent: &str) -> bool {
    RECENT_VERDICTS.with(|recent| {
        let mut recent = recent.borrow_mut();
        if let Some((_, verdict)) = recent.iter().find(|(seen, _)| **seen == *user_agent) {
            return *verdict;
        }
        let verdict = CRAWLERS.matches(user_agent.as_bytes());
        if recent.len() == RECENT {
            recent.pop_back();
        }
        recent.push_front((user_agent.into(), verdict));
        verdict
    })
}

/// User agents whose verdict a thread keeps.
const RECENT: usize = 8;

thread_local! {
    static RECENT_VERDICTS: std::cell::RefCell<std::collections::VecDeque<(Box<str>, bool)>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

static CRAWLERS: LazyLock<Crawlers> = LazyLock::new(|| {
    Crawlers::compile(PATTERNS).unwrap_or_else(|e| panic!("the bundled isbot list: {e}"))
});

/// The compiled list.
struct Crawlers {
    /// Every pattern without look-around, as one alternation (none: no such pattern).
    plain: Option<Regex>,
    guarded: Vec<Guarded>,
}

/// A pattern with a negative look-behind of literals and/or a negative look-ahead.
struct Guarded {
    not_after: Vec<Vec<u8>>,
    core: Regex,
    not_before: Option<Regex>,
}

impl Crawlers {
    fn compile(json: &str) -> Result<Self, String> {
        let list: Vec<String> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut plain = Vec::new();
        let mut guarded = Vec::new();
        for p in &list {
            if p.contains("(?<") || p.contains("(?!") || p.contains("(?=") {
                guarded.push(Guarded::parse(p)?);
            } else {
                plain.push(format!("(?:{p})"));
            }
        }
        let plain = match plain.is_empty() {
            true => None,
            false => Some(build(&plain.join("|"))?),
        };
        Ok(Self { plain, guarded })
    }

    fn matches(&self, ua: &[u8]) -> bool {
        !ua.is_empty()
            && (self.plain.as_ref().is_some_and(|r| r.is_match(ua))
                || self.guarded.iter().any(|g| g.matches(ua)))
    }
}

impl Guarded {
    /// `(?<!a|b)core(?!ahead)`, either guard optional.
    fn parse(pattern: &str) -> Result<Self, String> {
        let mut rest = pattern;
        let mut not_after = Vec::new();
        if let Some(after) = rest.strip_prefix("(?<!") {
            let close = after
                .find(')')
                .ok_or_else(|| format!("unclosed look-behind in {pattern:?}"))?;
            let alternatives = &after[..close];
            if alternatives.contains(['(', '[', '\\', '?', '*', '+', '.']) {
                return Err(format!("a look-behind that is not literal in {pattern:?}"));
            }
            not_after = alternatives
                .split('|')
                .map(|a| a.as_bytes().to_ascii_lowercase())
                .collect();
            rest = &after[close + 1..];
        }
        let mut not_before = None;
        if let Some(at) = rest.find("(?!") {
            let ahead = rest[at + 3..]
                .strip_suffix(')')
                .ok_or_else(|| format!("a look-ahead not at the end of {pattern:?}"))?;
            not_before = Some(build(&format!("^(?:{ahead})"))?);
            rest = &rest[..at];
        }
        if rest.contains("(?<") || rest.contains("(?!") || rest.contains("(?=") {
            return Err(format!("look-around inside {pattern:?}"));
        }
        Ok(Self {
            not_after,
            core: build(rest)?,
            not_before,
        })
    }

    /// Whether some core match passes both guards (each start tried, as JavaScript would).
    fn matches(&self, ua: &[u8]) -> bool {
        let mut at = 0;
        while let Some(m) = self.core.find_at(ua, at) {
            let before = &ua[..m.start()];
            let behind_ok = !self.not_after.iter().any(|lit| {
                before.len() >= lit.len()
                    && before[before.len() - lit.len()..].eq_ignore_ascii_case(lit)
            });
            let ahead_ok = self
                .not_before
                .as_ref()
                .is_none_or(|r| !r.is_match(&ua[m.end()..]));
            if behind_ok && ahead_ok {
                return true;
            }
            at = m.start() + 1;
            if at > ua.len() {
                return false;
            }
        }
        false
    }
}

fn build(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&literal_class_dashes(pattern))
        .case_insensitive(true)
        .unicode(false)
        .build()
        .map_err(|e| e.to_string())
}

/// JavaScript reads a `-` right after a class escape inside brackets (`[\w\d-.]`) as a
/// literal dash; Rust's `regex` refuses it as a range: escape it.
fn literal_class_dashes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => {
                let Some(escaped) = chars.next() else { break };
                out.push(escaped);
                let class_escape = matches!(escaped, 'w' | 'W' | 'd' | 'D' | 's' | 'S');
                if in_class && class_escape && chars.peek() == Some(&'-') {
                    chars.next();
                    out.push_str("\\-");
                }
            }
            '[' => in_class = true,
            ']' => in_class = false,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
    const FIREFOX: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
    const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    const GOOGLE_APP: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/330.0.663382097 Mobile/15E148 Safari/604.1 GoogleApp";

    /// The crawlers' own published user agents.
    const CRAWLERS_UA: &[&str] = &[
        // https://developers.google.com/search/docs/crawling-indexing/google-common-crawlers
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        // https://www.bing.com/webmasters/help/which-crawlers-does-bing-use-8c184ec0
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        // https://ahrefs.com/robot
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        // Chrome's headless mode (what Puppeteer and Playwright run)
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "curl/8.5.0",
    ];

    #[test]
    fn the_bundled_list_compiles_every_pattern_with_six_look_around_ones() {
        let c = Crawlers::compile(PATTERNS).unwrap();
        let all: Vec<String> = serde_json::from_str(PATTERNS).unwrap();
        assert_eq!(all.len(), 206);
        assert_eq!(c.guarded.len(), 6);
    }

    #[test]
    fn a_dash_after_a_class_escape_in_brackets_is_literal_as_in_javascript() {
        assert_eq!(literal_class_dashes(r"[\w\d-.]+"), r"[\w\d\-.]+");
        assert_eq!(literal_class_dashes(r"[a-z]\d-x"), r"[a-z]\d-x");
        assert!(build(r"^[\w\d-.]+$").unwrap().is_match(b"a-1.b"));
    }

    /// User agents with `isbot(ua)` as isbot 5.2.4 itself answers them under Node
    /// (`bots/isbot-5.2.4-verdicts.json`, written by `node -e` from the package): browsers,
    /// in-app browsers, crawlers, monitors, libraries, and each look-around pattern's cases.
    #[test]
    fn every_verdict_agrees_with_isbot_itself() {
        let verdicts: Vec<(String, bool)> =
            serde_json::from_str(include_str!("bots/isbot-5.2.4-verdicts.json")).unwrap();
        assert_eq!(verdicts.len(), 40);
        for (ua, bot) in verdicts {
            assert_eq!(is_crawler(&ua), bot, "{ua}");
        }
    }

    /// The kept last verdict answers only for the same user agent: alternating, repeating and
    /// near-identical agents each get the list's own verdict.
    #[test]
    fn the_kept_verdict_is_only_for_the_same_user_agent() {
        let bot = CRAWLERS_UA[0];
        let near = &bot[..bot.len() - 1];
        for ua in [
            bot,
            CHROME,
            CHROME,
            bot,
            bot,
            "",
            CHROME,
            near,
            bot,
            "curl/8.5.0",
        ] {
            assert_eq!(is_crawler(ua), CRAWLERS.matches(ua.as_bytes()), "{ua}");
        }
        assert!(is_crawler(bot) && !is_crawler(CHROME) && is_crawler(bot));
        // More agents than a thread keeps verdicts for, twice round: evicted ones are
        // matched again, kept ones answered alike.
        let many: Vec<String> = (0..RECENT + 3)
            .map(|i| {
                if i % 3 == 0 {
                    format!("{bot} {i}")
                } else {
                    format!("{CHROME} {i}")
                }
            })
            .collect();
        for ua in many.iter().chain(&many).chain(many.iter().rev()) {
            assert_eq!(is_crawler(ua), CRAWLERS.matches(ua.as_bytes()), "{ua}");
        }
    }

    #[test]
    fn googlebot_bingbot_ahrefsbot_and_headless_chrome_are_crawlers() {
        for ua in CRAWLERS_UA {
            assert!(is_crawler(ua), "{ua}");
        }
    }

    #[test]
    fn real_chrome_safari_firefox_and_edge_are_not() {
        for ua in [
            CHROME,
            SAFARI_IOS,
            SAFARI_MAC,
            FIREFOX,
            EDGE,
            CHROME_ANDROID,
            GOOGLE_APP,
            "",
        ] {
            assert!(!is_crawler(ua), "{ua}");
        }
    }

    #[test]
    fn look_around_guards_behave_as_in_javascript() {
        // `(?<!cam)scan`: a scanner is a bot, a camscanner app is not by that pattern.
        assert!(is_crawler("Mozilla/5.0 Qualys-Scanner"));
        let scan = Crawlers::compile(r#"["(?<!cam)scan"]"#).unwrap();
        assert!(!scan.matches(b"CamScanner"));
        assert!(scan.matches(b"camscanner scan"));
        // `java(?!;)`: a Java client is a bot, `java;` inside a browser token is not.
        let java = Crawlers::compile(r#"["java(?!;)"]"#).unwrap();
        assert!(java.matches(b"Java/17.0.2"));
        assert!(!java.matches(b"x java; y"));
        // `google(?!(?:wv|app|/google| pixel))`: the Google app is no crawler.
        let google =
            Crawlers::compile(r#"["(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))"]"#)
                .unwrap();
        assert!(!google.matches(b"GoogleApp"));
        assert!(google.matches(b"Google-InspectionTool"));
    }
}
