//! Renders the man pages of culvert (section 1, a page per subcommand as git has), culvertd and culvert-wg
//! (section 8) from the clap definitions the binaries parse with, so that a page cannot drift from its command.
//! What clap does not know (exit status, files, environment, signals) is written here, next to the page.
//!
//!   culvert-man OUT_DIR   -> OUT_DIR/man1/culvert.1, culvert-up.1, ..., OUT_DIR/man8/culvertd.8, culvert-wg.8
//!
//! packaging/build runs it and compresses the pages; the .deb and .rpm install them under /usr/share/man.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

/// The `.TH` line's fourth and fifth fields.
const SOURCE: &str = concat!("Culvert ", env!("CARGO_PKG_VERSION"));
const MANUAL: &str = "Culvert";

/// A section of a page that clap does not render: its title and its items (a term and what it means).
struct Section {
    title: &'static str,
    items: &'static [(&'static str, &'static str)],
}

const CULVERT_SECTIONS: &[Section] = &[
    Section {
        title: "SHELL COMPLETION",
        items: &[
            (
                "bash, zsh, fish",
                "The packages install completions that offer commands, options, stored profiles (culvert up) and \
                 your tunnels that are up (culvert down), asking culvert at each Tab.",
            ),
            (
                "source <(COMPLETE=bash culvert)",
                "Loads them in a shell where culvert was not installed from a package (COMPLETE=zsh and \
                 COMPLETE=fish for the others).",
            ),
        ],
    },
    Section {
        title: "ENVIRONMENT",
        items: &[
            ("CULVERT_SOCKET", "The helper's socket, when --socket is not given (default /run/culvert/culvertd.sock)."),
            ("XDG_CONFIG_HOME", "Stored profiles are kept in $XDG_CONFIG_HOME/culvert/profiles (default ~/.config)."),
        ],
    },
    Section {
        title: "FILES",
        items: &[
            (
                "~/.config/culvert/profiles/NAME.toml",
                "Stored profiles, without their keys: those are in the desktop session's keyring (the Secret Service).",
            ),
            ("/run/culvert/culvertd.sock", "culvertd's socket; members of group culvert may use it."),
            (
                "/run/culvert-monitor/culvertd.sock",
                "culvertd's monitor socket, which culvert exporter reads; members of group culvert-monitor may use it.",
            ),
        ],
    },
    Section { title: "SEE ALSO", items: &[("culvertd(8), culvert-wg(8), wg(8), wg-quick(8)", "")] },
];

const CULVERTD_SECTIONS: &[Section] = &[
    Section {
        title: "SIGNALS",
        items: &[(
            "SIGTERM, SIGINT",
            "Bring every tunnel down and exit. The kill switches of system tunnels, and lockdown, stay in place until \
             culvertd starts again, so that nothing leaks while it is stopped.",
        )],
    },
    Section {
        title: "ENVIRONMENT",
        items: &[
            ("CULVERT_SOCKET", "The socket, when --socket is not given."),
            ("RUST_LOG", "What is logged (default info), as tracing's EnvFilter reads it: culvertd=debug, say."),
        ],
    },
    Section {
        title: "FILES",
        items: &[
            ("/run/culvert/culvertd.sock", "The socket clients connect to."),
            (
                "/run/culvert-monitor/culvertd.sock",
                "The monitor socket: members of the monitor group read every tunnel's status and counters there.",
            ),
            (
                "/etc/culvert/tunnels/NAME.toml, NAME.conf",
                "System tunnels (culvert enable), root-only, keys inline; brought up whenever culvertd starts.",
            ),
            ("/etc/culvert/lockdown", "Present while lockdown is on (culvert lockdown on)."),
            ("/var/lib/culvert", "What culvertd created, recorded to be undone after a crash."),
            ("/var/run/wireguard/NAME.sock", "The WireGuard userspace API of each WireGuard tunnel, for wg show."),
        ],
    },
    Section { title: "SEE ALSO", items: &[("culvert(1), culvert-wg(8), systemd.service(5)", "")] },
];

const CULVERT_WG_SECTIONS: &[Section] = &[
    Section {
        title: "EXAMPLES",
        items: &[
            (
                "WG_QUICK_USERSPACE_IMPLEMENTATION=culvert-wg wg-quick up wg0",
                "Bring up /etc/wireguard/wg0.conf on culvert-wg instead of the kernel module or wireguard-go.",
            ),
            (
                "culvert-wg wg0 && wg setconf wg0 wg0.conf && ip link set wg0 up",
                "The same by hand: the device comes with no configuration, address or route of its own.",
            ),
        ],
    },
    Section {
        title: "ENVIRONMENT",
        items: &[
            ("LOG_LEVEL", "verbose (or debug), error (the default) or silent, as wireguard-go reads it."),
            (
                "WG_QUICK_USERSPACE_IMPLEMENTATION",
                "Read by wg-quick, not by culvert-wg: set it to culvert-wg to have wg-quick use it.",
            ),
        ],
    },
    Section {
        title: "FILES",
        items: &[(
            "/var/run/wireguard/INTERFACE.sock",
            "The userspace API socket wg and wg-quick configure the device through. culvert-wg exits, removing \
             it, when the device is deleted, when the socket is removed, and on SIGTERM or SIGINT.",
        )],
    },
    Section {
        title: "EXIT STATUS",
        items: &[
            ("0", "The device is up in the background (or, with --foreground, ended as asked)."),
            ("1", "The device or its socket could not be made; standard error says why."),
            ("2", "The command line or the interface name is not valid."),
        ],
    },
    Section { title: "SEE ALSO", items: &[("wg(8), wg-quick(8), culvertd(8)", "")] },
];

fn render_section(roff: &mut Roff, section: &Section) {
    roff.control("SH", [section.title]);
    for (term, text) in section.items {
        if text.is_empty() {
            roff.text([roman(*term)]);
        } else {
            roff.control("TP", []);
            roff.text([bold(*term)]);
            roff.text([roman(*text)]);
        }
    }
}

/// One page: clap's sections, then the exit statuses and ours before the version (where man pages keep them).
fn write_page(
    man: &Man,
    cmd: &clap::Command,
    exit: &[(u8, &str)],
    extra: &[Section],
    dir: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut out = std::fs::File::create(dir.join(man.get_filename()))?;
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
        let mut roff = Roff::new();
        roff.control("PP", []);
        roff.text([
            roman("Each command has a page of its own: "),
            italic(format!("{}-COMMAND", cmd.get_name())),
            roman("(1), as "),
            italic(format!("{}-up", cmd.get_name())),
            roman("(1)."),
        ]);
        roff.to_writer(&mut out)?;
    }
    let mut roff = Roff::new();
    if !exit.is_empty() {
        roff.control("SH", ["EXIT STATUS"]);
        for (code, text) in exit {
            roff.control("TP", []);
            roff.text([bold(code.to_string())]);
            roff.text([roman(*text)]);
        }
    }
    for section in extra {
        render_section(&mut roff, section);
    }
    roff.to_writer(&mut out)?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    out.flush()
}

fn man(cmd: clap::Command, section: &str) -> Man {
    Man::new(cmd).section(section).source(SOURCE).manual(MANUAL)
}

fn write_all(out: &Path) -> std::io::Result<()> {
    let mut culvert = culvert_cli::args::Cli::command().disable_help_subcommand(true);
    culvert.build();
    let man1 = out.join("man1");
    let exit: Vec<(u8, &str)> = culvert_cli::exit::CODES.iter().map(|(code, text)| (*code as u8, *text)).collect();
    write_page(&man(culvert.clone(), "1"), &culvert, &exit, CULVERT_SECTIONS, &man1)?;
    for sub in culvert.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(&man(sub.clone(), "1"), sub, &[], &[], &man1)?;
    }
    let man8 = out.join("man8");
    for (cmd, extra) in [
        (culvert_helper::args::Culvertd::command(), CULVERTD_SECTIONS),
        (culvert_helper::args::CulvertWg::command(), CULVERT_WG_SECTIONS),
    ] {
        let mut cmd = cmd;
        cmd.build();
        write_page(&man(cmd.clone(), "8"), &cmd, &[], extra, &man8)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: culvert-man OUT_DIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(&out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("culvert-man: writing the man pages to {}: {e}", Path::new(&out).display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Every command has its page, and groff renders each without a warning (a roff mistake in what is
    /// written here, or in a doc comment clap passes through).
    #[test]
    fn every_command_has_a_page_that_man_renders_cleanly() {
        let out = std::env::temp_dir().join(format!("culvert-man-{}", std::process::id()));
        write_all(&out).unwrap();
        let culvert = culvert_cli::args::Cli::command();
        let mut pages: Vec<PathBuf> = culvert
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| out.join(format!("man1/culvert-{}.1", s.get_name())))
            .collect();
        pages.extend(["man1/culvert.1", "man8/culvertd.8", "man8/culvert-wg.8"].map(|p| out.join(p)));
        for page in &pages {
            assert!(page.exists(), "no page {}", page.display());
            let man = std::process::Command::new("man")
                .args(["--warnings", "-l"])
                .arg(page)
                .env("MANWIDTH", "100")
                .output()
                .expect("man (man-db) runs");
            let warnings = String::from_utf8_lossy(&man.stderr);
            assert!(man.status.success() && warnings.is_empty(), "{}: {warnings}", page.display());
            let text = String::from_utf8_lossy(&man.stdout);
            assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{}: {text}", page.display());
        }
        let top = std::fs::read_to_string(out.join("man1/culvert.1")).unwrap();
        assert!(top.contains("EXIT STATUS") && top.contains("CULVERT_SOCKET"), "{top}");
        assert!(top.contains("culvertd is not running"), "the exit statuses are not culvert_cli's: {top}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}
