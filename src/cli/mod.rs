//! Shared pieces of the command line: global options, where the host comes
//! from, colour, and error reporting in rustc's shape
//! (`error: what`, `  --> where`, `help: what to do`).
//!
//! The items here are private: every `cli/` file is a child module and sees
//! them; only [`app::main`] is visible to the binaries. Items of the child
//! files are `pub(super)` when other `cli/` files use them (src/main.rs
//! says why nothing in this tree is a bare `pub`).

/// `println!` that ends quietly when the reader went away (`| head`)
/// instead of panicking; see [`emit`].
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::cli::emit(&format!("{}\n", format_args!($($t)*)))
    };
}

/// Both binaries' allocator (each compiles this tree as its own `cli`):
/// mimalloc, not the system allocator. Reading a fleet's snapshots makes
/// millions of small allocations, and glibc's malloc and free were a fifth
/// of that work; it costs every start about 0.25 ms (BENCHMARKS.md,
/// Findings, 2026-12-01).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod actions;
pub(crate) mod app;
mod companion;
mod complete;
mod consent;
mod doctor;
mod edit;
mod edit_domain;
mod fake;
mod fleet;
mod guard;
mod hostdevs;
mod inventory;
mod list;
mod map;
mod meta;
mod persist;
mod place;
mod retarget;
mod show;
mod snapshot;
mod snippet;
mod usb;
mod validate;

use clap::{Args as ClapArgs, ValueEnum};
use std::cell::OnceCell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::address::{AddressError, DeviceSpec};
use virt_pci::diagnostic::Located;
use virt_pci::host::{self, Host};
use virt_pci::invocation::{DomainSource, Given, HostSource, Invocation, InvocationError};
use virt_pci::pciids::PciIds;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Options every command accepts: where the host comes from, names, colour.
#[derive(ClapArgs, Debug, Clone)]
struct GlobalArgs {
    /// Read the host from DIR/sys and DIR/proc instead of / (fake trees, chroots).
    #[arg(long, global = true, env = "VIRT_PCI_ROOT", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    root: Option<PathBuf>,
    /// Read the host from a snapshot made by `virt-pci snapshot` (offline, CI).
    #[arg(long, global = true, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    snapshot: Option<PathBuf>,
    /// libvirt connection URI (qemu:///system, qemu+ssh://host/system, test:///path.xml).
    #[arg(
        short = 'c',
        long = "connect",
        global = true,
        env = "LIBVIRT_DEFAULT_URI",
        value_name = "URI"
    )]
    connect: Option<String>,
    /// `-c/--connect` was typed (as opposed to coming from
    /// `LIBVIRT_DEFAULT_URI`); set from clap's value source after parsing.
    #[arg(skip)]
    connect_on_command_line: bool,
    /// `--root` was typed (as opposed to coming from `VIRT_PCI_ROOT`).
    #[arg(skip)]
    root_on_command_line: bool,
    /// pci.ids file for device names (default: /usr/share/misc/pci.ids).
    #[arg(long, global = true, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pci_ids: Option<PathBuf>,
    /// When to use colour (NO_COLOR is respected with auto).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
}

/// A failure to report: message, optional location, help lines, exit code.
/// A position in a file ([`CliError::in_file`]) is shown as `validate` shows
/// its findings, with the line and a caret ([`virt_pci::diagnostic`]);
/// `location` is for places that are not a file position (a domain and
/// device, a key in a document).
#[derive(Debug)]
struct CliError {
    message: String,
    location: Option<String>,
    file: Option<Box<Located>>,
    help: Vec<String>,
    exit_code: u8,
}

impl CliError {
    fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            location: None,
            file: None,
            help: Vec::new(),
            exit_code: 1,
        }
    }

    /// A usage or I/O problem (exit code 2).
    fn usage(message: impl Into<String>) -> CliError {
        CliError {
            exit_code: 2,
            ..CliError::new(message)
        }
    }

    fn help(mut self, h: impl Into<String>) -> CliError {
        self.help.push(h.into());
        self
    }

    fn at(mut self, loc: impl Into<String>) -> CliError {
        self.location = Some(loc.into());
        self
    }

    /// The error is at this place in a file.
    fn in_file(mut self, loc: Located) -> CliError {
        self.file = Some(Box::new(loc));
        self
    }

    fn code(mut self, c: u8) -> CliError {
        self.exit_code = c;
        self
    }
}

impl From<AddressError> for CliError {
    fn from(e: AddressError) -> Self {
        CliError::usage(e.to_string()).help(e.help())
    }
}

impl From<host::ResolveError> for CliError {
    fn from(e: host::ResolveError) -> Self {
        let mut c = CliError::new(e.message);
        c.help = e.help;
        c
    }
}

type CliResult = Result<ExitCode, CliError>;

/// Styles for terminal output (plain when colour is off).
#[derive(Clone, Copy, Debug)]
struct Styles {
    on: bool,
}

impl Styles {
    fn paint(&self, style: anstyle::Style, s: &str) -> String {
        if self.on {
            format!("{}{s}{}", style.render(), style.render_reset())
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint(anstyle::Style::new().bold(), s)
    }
    fn red(&self, s: &str) -> String {
        self.paint(anstyle::AnsiColor::Red.on_default().bold(), s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint(anstyle::AnsiColor::Yellow.on_default().bold(), s)
    }
    fn green(&self, s: &str) -> String {
        self.paint(anstyle::AnsiColor::Green.on_default(), s)
    }
    fn cyan(&self, s: &str) -> String {
        self.paint(anstyle::AnsiColor::Cyan.on_default(), s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint(anstyle::Style::new().dimmed(), s)
    }
}

/// What every command gets: the global options and the invocation,
/// resolved once ([`virt_pci::invocation`] holds every precedence rule).
struct Context {
    global: GlobalArgs,
    inv: Invocation,
    out: Styles,
    err: Styles,
    ids: OnceCell<PciIds>,
}

fn color_on(choice: ColorChoice, tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
        }
    }
}

impl From<InvocationError> for CliError {
    fn from(e: InvocationError) -> Self {
        let mut c = CliError::usage(e.message);
        c.help = e.help;
        c
    }
}

impl Context {
    fn new(global: GlobalArgs, inv: Invocation) -> Context {
        let out = Styles {
            on: color_on(global.color, std::io::stdout().is_terminal()),
        };
        let err = Styles {
            on: color_on(global.color, std::io::stderr().is_terminal()),
        };
        Context {
            global,
            inv,
            out,
            err,
            ids: OnceCell::new(),
        }
    }

    /// The options as given, for [`Invocation::resolve`].
    fn given(global: &GlobalArgs) -> Given {
        Given {
            snapshot: global.snapshot.clone(),
            root: global.root.clone(),
            root_from_env: !global.root_on_command_line,
            connect: global.connect.clone(),
            connect_from_env: !global.connect_on_command_line,
        }
    }

    /// The libvirt URI domains come from (`None`: libvirt's default).
    fn domains_uri(&self) -> Option<String> {
        match &self.inv.domains {
            DomainSource::Libvirt(u) => u.clone(),
            DomainSource::None => None,
        }
    }

    /// Read the host from the source the invocation chose; domains from its
    /// domain source.
    fn host(&self) -> Result<Host, CliError> {
        let mut h = match &self.inv.host {
            HostSource::Snapshot(p) => host::snapshot::load(p).map_err(snapshot_error)?,
            HostSource::Root(r) => read_sysfs(r)?,
            HostSource::Libvirt(uri) => self.host_from_libvirt(uri)?,
            HostSource::ThisMachine => read_sysfs(std::path::Path::new("/"))?,
            HostSource::None => {
                return Err(CliError::usage("this command reads no host")
                    .help("name one with --snapshot FILE, --root DIR or -c URI"))
            }
        };
        if !matches!(self.inv.host, HostSource::Libvirt(_)) {
            if let DomainSource::Libvirt(uri) = &self.inv.domains {
                h.domains = self.domains_from_libvirt(uri.as_deref())?;
            }
        }
        h.invocation = Some(self.inv.host_args());
        Ok(h)
    }

    fn domains_from_libvirt(&self, uri: Option<&str>) -> Result<Vec<host::DomainUse>, CliError> {
        let conn = self.libvirt(uri, true).map_err(|e| e.code(2))?;
        let d = conn.domains().map_err(|e| libvirt_error(e).code(2))?;
        Ok(virt_pci::libvirt::domain_uses(&d))
    }

    fn host_from_libvirt(&self, uri: &str) -> Result<Host, CliError> {
        let conn = virt_pci::libvirt::open(Some(uri), true).map_err(|e| {
            let linked = !e.is_not_linked();
            let mut c = libvirt_error(e).code(2);
            if !linked {
                c = c.help("or read the host with --root or --snapshot");
                if !self.global.connect_on_command_line {
                    c = c.help("unset LIBVIRT_DEFAULT_URI to read this machine's sysfs");
                }
            }
            c
        })?;
        self.read_libvirt_host(&conn).map_err(|e| e.code(2))
    }

    /// The host through a connection ([`virt_pci::libvirt::read_host`]: on
    /// this machine completed with what only sysfs knows).
    fn read_libvirt_host(&self, conn: &virt_pci::libvirt::Conn) -> Result<Host, CliError> {
        let (mut h, missed) = virt_pci::libvirt::read_host(conn).map_err(libvirt_error)?;
        if let Some(e) = missed {
            eprintln!(
                "{}: cannot read this machine's sysfs ({e}); host-critical devices are not known",
                self.err.yellow("warning")
            );
        }
        h.invocation = Some(self.inv.host_args());
        Ok(h)
    }

    /// Open a libvirt connection (`uri` None: libvirt's default).
    fn libvirt(
        &self,
        uri: Option<&str>,
        read_only: bool,
    ) -> Result<virt_pci::libvirt::Conn, CliError> {
        virt_pci::libvirt::open(uri, read_only).map_err(libvirt_error)
    }

    /// Device names, loaded on first use.
    fn ids(&self) -> &PciIds {
        self.ids
            .get_or_init(|| match PciIds::load(self.global.pci_ids.as_deref()) {
                Ok(ids) => ids,
                Err(e) => {
                    if let Some(p) = &self.global.pci_ids {
                        eprintln!(
                            "{}: cannot read {}: {e}; showing ids only",
                            self.err.yellow("warning"),
                            p.display()
                        );
                    }
                    PciIds::empty()
                }
            })
    }

    /// Print an error in rustc's shape on stderr.
    fn report(&self, e: &CliError) {
        use virt_pci::text::terminal_safe as safe;
        let s = &self.err;
        if let Some(f) = &e.file {
            eprintln!("{}", safe(&f.render(&e.message, &e.help, s.on)));
            return;
        }
        eprintln!(
            "{}{} {}",
            s.red("error"),
            s.bold(":"),
            s.bold(&safe(&e.message))
        );
        if let Some(l) = &e.location {
            eprintln!("  {} {}", s.cyan("-->"), safe(l));
        }
        for h in &e.help {
            eprintln!("{}{} {}", s.cyan("help"), s.bold(":"), safe(h));
        }
    }
}

/// A libvirt failure at the CLI edge: libvirt's message verbatim, our help.
/// A binary without libvirt is a usage problem (exit 2).
fn libvirt_error(e: virt_pci::libvirt::LibvirtError) -> CliError {
    let mut c = CliError::new(e.to_string());
    if e.is_not_linked() {
        c = c.code(2);
    }
    if let Some(h) = e.help {
        c = c.help(h);
    }
    c
}

/// A snapshot that cannot be read; a JSON error shows its line with a caret.
fn snapshot_error(e: host::snapshot::SnapshotError) -> CliError {
    let help = "make a snapshot on the host with `virt-pci snapshot -o FILE`";
    if e.line == 0 {
        return CliError::usage(e.to_string()).help(help);
    }
    // serde_json ends its messages with " at line L column C", shown below.
    let m = e
        .message
        .rsplit_once(" at line ")
        .map_or(e.message.as_str(), |(m, _)| m);
    CliError::usage(format!("{}: {m}", e.path.display()))
        .in_file(Located::in_file(&e.path, e.line as u32, e.column as u32))
        .help(help)
}

fn read_sysfs(root: &std::path::Path) -> Result<Host, CliError> {
    host::sysfs::read(root).map_err(|e| {
        let mut c = CliError::usage(e.to_string());
        if let Some(h) = e.help {
            c = c.help(h);
        }
        c
    })
}

/// The host, the functions the specs name on it, and the plan for them:
/// what `show`, `snippet` and `add` all start from.
fn host_and_plan(
    ctx: &Context,
    devices: &[String],
    opts: virt_pci::plan::PlanOptions,
) -> Result<(Host, Vec<virt_pci::PciAddress>, virt_pci::plan::Plan), CliError> {
    let specs = parse_specs(devices)?;
    let host = ctx.host()?;
    let addrs = host.resolve_all(&specs)?;
    let p = virt_pci::plan::plan(&host, &addrs, opts);
    Ok((host, addrs, p))
}

/// Parse device specs given on the command line.
fn parse_specs(specs: &[String]) -> Result<Vec<DeviceSpec>, CliError> {
    specs
        .iter()
        .map(|s| DeviceSpec::parse(s).map_err(CliError::from))
        .collect()
}

/// A device's display name ([`virt_pci::report::display_name`]: pci.ids,
/// else the source's names, else ids), escaped for printing.
fn device_name(ctx: &Context, d: &host::Device) -> String {
    virt_pci::text::escape(&virt_pci::report::display_name(ctx.ids(), d))
}

/// [`device_name`] from the ids and the source's names.
fn name_of(
    ctx: &Context,
    vendor_id: u16,
    device_id: u16,
    vendor_name: Option<&str>,
    device_name: Option<&str>,
) -> String {
    // Names come from snapshots, listings and pci.ids: escaped for printing.
    virt_pci::text::escape(&virt_pci::report::name_of(
        ctx.ids(),
        vendor_id,
        device_id,
        vendor_name,
        device_name,
    ))
}

/// Print JSON on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> CliResult {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| CliError::new(format!("cannot encode JSON: {e}")))?;
    emit(&format!("{s}\n"));
    Ok(ExitCode::SUCCESS)
}

/// Write command output to stdout. A reader that went away (`| head`) ends
/// the output quietly instead of panicking as `print!` does.
fn emit(text: &str) {
    use std::io::Write;
    let text = virt_pci::text::terminal_safe(text);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
