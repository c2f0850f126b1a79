//! Rendering: the title bar, the Nodes and Functions tables, recent events and the key
//! help, fitted to the terminal: on a narrow one the least useful columns go first.

use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, List, ListItem, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};

use super::model::{EventLog, FunctionRow, NodeRow, SortKey, Tables};

/// Everything one frame shows.
pub struct Screen<'a> {
    /// Cluster id.
    pub cluster: &'a str,
    /// Refresh interval.
    pub interval: Duration,
    /// How long this `top` has been running.
    pub uptime: Duration,
    /// Both tables, already sorted.
    pub tables: &'a Tables,
    /// Recent events.
    pub events: &'a EventLog,
    /// The sort column.
    pub sort: SortKey,
    /// A line about the session itself (e.g. still discovering), shown in the title bar.
    pub status: Option<&'a str>,
}

/// The key help of the footer.
pub const KEYS: &str = "q/Esc quit  s cycle sort  c calls/s  n name  p p99  e errors/drops";

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, s: &Screen) {
    let t = s.tables;
    let [title, nodes, functions, events, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(t.nodes.len().max(1) as u16 + 3),
        Constraint::Length(t.functions.len().max(1) as u16 + 3),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(title_bar(s), title);
    draw_nodes(frame, nodes, &t.nodes);
    draw_functions(frame, functions, &t.functions);
    draw_events(frame, events, s.events);
    let mut help = format!("{KEYS}   sorted by {}", s.sort.label());
    if help.chars().count() > usize::from(footer.width) {
        help = format!("q quit  s sort ({})", s.sort.label());
    }
    frame.render_widget(
        Paragraph::new(help).style(Style::new().fg(Color::DarkGray)),
        footer,
    );
}

/// The whole screen as plain text, `width` columns wide and as tall as it needs (at most
/// 10 events): what `mpreg top --once` prints.
pub fn text(s: &Screen, width: u16) -> String {
    let t = s.tables;
    let height = 1 + (t.nodes.len().max(1) + 3) + (t.functions.len().max(1) + 3);
    let height = height + s.events.iter().len().clamp(1, 10) + 2 + 1;
    let height = u16::try_from(height).unwrap_or(u16::MAX);
    // Drawing into memory cannot fail (the error type is `Infallible`).
    let Ok(mut term) = Terminal::new(TestBackend::new(width.max(1), height));
    let Ok(_) = term.draw(|f| draw(f, s));
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn title_bar(s: &Screen) -> Paragraph<'static> {
    let members = s.tables.nodes.len();
    let plural = if members == 1 { "" } else { "s" };
    let mut text = format!(
        " mpreg top │ cluster {} │ {members} member{plural} │ every {} │ up {}",
        s.cluster,
        duration(s.interval),
        clock(s.uptime)
    );
    if let Some(status) = s.status {
        text.push_str(" │ ");
        text.push_str(status);
    }
    Paragraph::new(text).style(Style::new().add_modifier(Modifier::REVERSED))
}

/// A table column: its title, width, priority (0 is kept longest on a narrow screen), and
/// whether it holds figures (aligned right, so digits line up).
struct Col {
    title: &'static str,
    width: u16,
    priority: u8,
    right: bool,
}

impl Col {
    /// A column of text.
    fn text(title: &'static str, width: u16, priority: u8) -> Col {
        Col {
            title,
            width,
            priority,
            right: false,
        }
    }

    /// A column of figures.
    fn figure(title: &'static str, width: u16, priority: u8) -> Col {
        Col {
            title,
            width,
            priority,
            right: true,
        }
    }
}

/// Indices of the columns that fit in `width` (with one space between columns), in their
/// original order: the lowest priorities first; the first column always.
fn fit(cols: &[Col], width: u16) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|&i| cols[i].priority);
    let mut kept = Vec::new();
    let mut used: u16 = 0;
    for i in order {
        let need = cols[i].width + u16::from(!kept.is_empty());
        if kept.is_empty() || used.saturating_add(need) <= width {
            used = used.saturating_add(need);
            kept.push(i);
        }
    }
    kept.sort_unstable();
    kept
}

/// A table of `cells` (one `Vec` per row, a cell per column) showing the columns that fit.
fn table<'a>(area: Rect, title: String, cols: &[Col], rows: Vec<Vec<String>>) -> Table<'a> {
    let kept = fit(cols, area.width.saturating_sub(2));
    let pick = |cells: &[String]| -> Vec<Cell<'a>> {
        kept.iter()
            .map(|&i| {
                let line = Line::from(cells.get(i).cloned().unwrap_or_default());
                Cell::from(if cols[i].right {
                    line.right_aligned()
                } else {
                    line
                })
            })
            .collect()
    };
    let titles: Vec<String> = cols.iter().map(|c| c.title.to_string()).collect();
    let header = Row::new(pick(&titles)).style(Style::new().add_modifier(Modifier::BOLD));
    let widths = kept.iter().map(|&i| Constraint::Length(cols[i].width));
    Table::new(rows.iter().map(|r| Row::new(pick(r))), widths)
        .header(header)
        .block(Block::bordered().title(title))
}

/// Width of the longest of `names` and `title`, within `[min, max]`.
fn name_width<'a>(title: &str, names: impl Iterator<Item = &'a str>, max: u16) -> u16 {
    let longest = names.map(|n| n.chars().count()).max().unwrap_or(0);
    let w = longest.max(title.len()).min(usize::from(max));
    u16::try_from(w).unwrap_or(max)
}

fn draw_nodes(frame: &mut Frame, area: Rect, rows: &[NodeRow]) {
    let cols = [
        Col::text(
            "name",
            name_width("name", rows.iter().map(|r| r.name.as_str()), 20),
            0,
        ),
        Col::text(
            "host",
            name_width("host", rows.iter().map(|r| r.host.as_str()), 16),
            5,
        ),
        Col::text(
            "role",
            name_width("role", rows.iter().map(|r| r.role.as_str()), 10),
            6,
        ),
        Col::text("state", 7, 3),
        Col::figure("calls/s", 8, 1),
        Col::figure("in flight", 9, 4),
        Col::figure("p99", 8, 2),
        Col::figure("pub/s", 8, 7),
        Col::figure("drops", 7, 8),
    ];
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.host.clone(),
                r.role.clone(),
                r.state.clone(),
                per_second(r.calls_per_s),
                count(r.in_flight),
                latency(r.p99_us),
                per_second(r.pub_per_s),
                count(r.drops),
            ]
        })
        .collect();
    let title = " Nodes (p99: its slowest function; ? = no answer) ".to_string();
    frame.render_widget(table(area, title, &cols, cells), area);
}

fn draw_functions(frame: &mut Frame, area: Rect, rows: &[FunctionRow]) {
    let cols = [
        Col::text(
            "function",
            name_width("function", rows.iter().map(|r| r.function.as_str()), 24),
            0,
        ),
        Col::figure("providers", 9, 3),
        Col::figure("calls/s", 8, 1),
        Col::figure("errors/s", 8, 2),
        Col::figure("p50", 8, 5),
        Col::figure("p95", 8, 6),
        Col::figure("p99", 8, 4),
    ];
    let cells = rows
        .iter()
        .map(|r| {
            vec![
                r.function.clone(),
                r.providers.to_string(),
                per_second(Some(r.calls_per_s)),
                per_second(Some(r.errors_per_s)),
                latency(Some(r.p50_us)),
                latency(Some(r.p95_us)),
                latency(Some(r.p99_us)),
            ]
        })
        .collect();
    let title =
        " Functions (latency: the provider with most calls; _built-ins hidden) ".to_string();
    frame.render_widget(table(area, title, &cols, cells), area);
}

fn draw_events(frame: &mut Frame, area: Rect, events: &EventLog) {
    let items: Vec<ListItem> = events
        .iter()
        .rev()
        .map(|e| {
            let colour = match e.kind {
                "down" | "silent" | "errors" => Color::Red,
                "leave" | "suspect" => Color::Yellow,
                _ => Color::Green,
            };
            let at = clock(Duration::from_millis(e.at_ms));
            ListItem::new(Line::from(vec![
                Span::styled(format!("{at} "), Style::new().fg(Color::DarkGray)),
                Span::styled(e.text.clone(), Style::new().fg(colour)),
            ]))
        })
        .collect();
    let list = if items.is_empty() {
        List::new([ListItem::new(
            "(none yet: joins, leaves, downs, error jumps show here)",
        )])
    } else {
        List::new(items)
    };
    frame.render_widget(list.block(Block::bordered().title(" Recent events ")), area);
}

/// A rate: `?` unknown, one decimal below 10.
pub fn per_second(r: Option<f64>) -> String {
    match r {
        None => "?".into(),
        Some(r) if r < 10.0 => format!("{r:.1}"),
        Some(r) => format!("{r:.0}"),
    }
}

fn count(n: Option<u64>) -> String {
    n.map_or("?".into(), |n| n.to_string())
}

/// A latency in µs, in a unit that keeps it short; `-` when nothing was measured.
pub fn latency(us: Option<u64>) -> String {
    match us {
        None => "?".into(),
        Some(0) => "-".into(),
        Some(us) if us < 1_000 => format!("{us}µs"),
        Some(us) if us < 1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        Some(us) => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// `250ms`, `1s`, `1.5s`.
fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// `m:ss`, or `h:mm:ss` past an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::top::model::Event;

    fn tables() -> Tables {
        let node = |name: &str, calls: Option<f64>| NodeRow {
            name: name.into(),
            host: "lab-pc".into(),
            role: "server".into(),
            state: "alive".into(),
            calls_per_s: calls,
            in_flight: calls.map(|_| 3),
            p99_us: calls.map(|_| 1_250),
            pub_per_s: calls.map(|_| 0.0),
            drops: calls.map(|_| 0),
        };
        Tables {
            nodes: vec![node("alpha-node", Some(1234.0)), node("beta-node", None)],
            functions: vec![FunctionRow {
                function: "echo".into(),
                providers: 2,
                calls_per_s: 1234.0,
                errors_per_s: 0.5,
                p50_us: 180,
                p95_us: 420,
                p99_us: 1_250,
            }],
        }
    }

    fn render(width: u16, height: u16, t: &Tables, events: &EventLog) -> String {
        let mut term = Terminal::new(TestBackend::new(width, height)).unwrap();
        let s = Screen {
            cluster: "lab",
            interval: Duration::from_millis(500),
            uptime: Duration::from_secs(83),
            tables: t,
            events,
            sort: SortKey::Calls,
            status: None,
        };
        term.draw(|f| draw(f, &s)).unwrap();
        let buf = term.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn a_wide_screen_shows_every_figure() {
        let mut events = EventLog::default();
        events.extend([Event {
            at_ms: 61_000,
            kind: "join",
            subject: "beta-node".into(),
            text: "beta-node joined".into(),
        }]);
        let out = render(120, 30, &tables(), &events);
        for want in [
            "cluster lab",
            "2 members",
            "every 500ms",
            "up 1:23",
            "alpha-node",
            "beta-node",
            "lab-pc",
            "server",
            "alive",
            "1234",
            "1.2ms",
            "echo",
            "180µs",
            "420µs",
            "0.5",
            "in flight",
            "errors/s",
            "providers",
            "1:01 beta-node joined",
            "sorted by calls/s",
            "q/Esc quit",
        ] {
            assert!(out.contains(want), "{want:?} missing from\n{out}");
        }
        // Figures are aligned right, under the right end of their title.
        let header = out.lines().find(|l| l.contains("in flight")).unwrap();
        let alpha = out.lines().find(|l| l.contains("alpha-node")).unwrap();
        let end = header.find("calls/s").unwrap() + "calls/s".len();
        assert!(
            alpha.is_char_boundary(end) && alpha[..end].ends_with(" 1234"),
            "{header}\n{alpha}"
        );
        let beta = out
            .lines()
            .find(|l| l.contains("beta-node") && !l.contains("joined"))
            .unwrap();
        assert!(beta.contains('?'), "a silent node shows ?: {beta}");
    }

    #[test]
    fn a_narrow_screen_drops_columns_but_keeps_names_and_rates() {
        let out = render(40, 20, &tables(), &EventLog::default());
        assert!(
            out.contains("alpha-node") && out.contains("1234") && out.contains("echo"),
            "{out}"
        );
        assert!(
            !out.contains("drops") && !out.contains("p95"),
            "low-priority columns go first:\n{out}"
        );
        assert!(
            out.contains("q quit  s sort (calls/s)"),
            "a short key help:\n{out}"
        );
        for (w, h) in [(1, 1), (10, 3), (40, 5), (20, 60), (0, 0)] {
            render(w, h, &tables(), &EventLog::default());
        }
    }

    #[test]
    fn columns_fit_by_priority_and_keep_their_order() {
        let col = |width, priority| Col::text("", width, priority);
        let cols = [col(10, 0), col(5, 3), col(5, 1), col(5, 2)];
        assert_eq!(fit(&cols, 100), [0, 1, 2, 3]);
        assert_eq!(fit(&cols, 22), [0, 2, 3]);
        assert_eq!(fit(&cols, 16), [0, 2]);
        assert_eq!(fit(&cols, 3), [0], "the first column stays, truncated");
    }

    #[test]
    fn figures_are_short() {
        assert_eq!(latency(Some(999)), "999µs");
        assert_eq!(latency(Some(1_500)), "1.5ms");
        assert_eq!(latency(Some(2_500_000)), "2.50s");
        assert_eq!(latency(Some(0)), "-");
        assert_eq!(latency(None), "?");
        assert_eq!(per_second(Some(2.26)), "2.3");
        assert_eq!(per_second(Some(812.6)), "813");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(clock(Duration::from_secs(3_723)), "1:02:03");
    }

    #[test]
    fn the_text_form_is_as_tall_as_its_content() {
        let t = tables();
        let events = EventLog::default();
        let s = Screen {
            cluster: "lab",
            interval: Duration::from_secs(1),
            uptime: Duration::ZERO,
            tables: &t,
            events: &events,
            sort: SortKey::Name,
            status: Some("2 answered"),
        };
        let out = text(&s, 100);
        assert!(
            out.contains("beta-node")
                && out.contains("sorted by name")
                && out.contains("2 answered"),
            "{out}"
        );
        assert!(out.lines().all(|l| l.chars().count() <= 100));
    }
}
