//! `bootgate profile create | list | show | rm`.

use std::path::PathBuf;
use std::str::FromStr;

use super::ListArgs;
use anyhow::{Context, Result};
use clap::{ArgAction, ArgGroup, Args, Subcommand};

use crate::bootcfg::b2c::{B2cConfig, B2cParam, CacheDevice, CmdlineValue, NtpPeer, RawCmdline};
use crate::bootcfg::scratch_volume::ScratchVolume;
use crate::datadir::DataDir;
use crate::datadir::profiles::{self, CreateOptions, Script, Source, VarAssignment};
use crate::names::{AssetName, ProfileName};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a boot configuration many machines share: a boot.ipxe from a
    /// file (--script) or generated for boot2container (--b2c).
    Create(Box<CreateArgs>),
    /// List profiles and the machines using them.
    List(ListArgs),
    /// Show a profile: its script, variables, files and machines.
    Show(ShowArgs),
    /// Delete a profile that no machine uses.
    Rm(RmArgs),
}

/// `--b2c` alone selects the boot2container generator; `--b2c NAME=VALUE`
/// also adds `b2c.NAME=VALUE` to the kernel line.
#[derive(Debug, Clone)]
enum B2cArg {
    Generator,
    Param(B2cParam),
}

impl FromStr for B2cArg {
    type Err = crate::bootcfg::b2c::B2cError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            Ok(Self::Generator)
        } else {
            s.parse().map(Self::Param)
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["script", "b2c"])))]
#[command(group(ArgGroup::new("generator").arg("b2c").requires_all(["kernel", "initramfs"])))]
pub struct CreateArgs {
    name: ProfileName,
    /// Use FILE as the profile's boot.ipxe template (docs/templates.md).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Generate a boot2container script. Repeat as --b2c PARAM=VALUE (or
    /// --b2c PARAM) to add b2c.PARAM=VALUE to the kernel command line.
    #[arg(long, value_name = "PARAM=VALUE", num_args = 0..=1, default_missing_value = "",
          action = ArgAction::Append)]
    b2c: Vec<B2cArg>,
    /// Shared asset holding the kernel.
    #[arg(long, value_name = "ASSET", requires = "b2c")]
    kernel: Option<AssetName>,
    /// Shared asset holding the boot2container initramfs.
    #[arg(long, value_name = "ASSET", requires = "b2c")]
    initramfs: Option<AssetName>,
    /// Shared asset holding a device tree, loaded with iPXE's `fdt` (arm64).
    #[arg(long, value_name = "ASSET", requires = "b2c")]
    dtb: Option<AssetName>,
    /// podman run arguments of a container to run (b2c.run; repeatable, run in order).
    #[arg(
        long,
        value_name = "ARGS",
        requires = "b2c",
        allow_hyphen_values = true
    )]
    run: Vec<CmdlineValue>,
    /// Clock source: auto (from DHCP), none, or a host (b2c.ntp_peer).
    #[arg(long, value_name = "auto|none|HOST", requires = "b2c")]
    ntp_peer: Option<NtpPeer>,
    /// Where container images are cached (b2c.cache_device): auto (the file
    /// system labelled B2C_CACHE that `image build --cache-size` makes; a
    /// machine without one gets its first disk repartitioned and formatted),
    /// reset (the same, reformatted), none, or a device such as /dev/mmcblk0p2.
    #[arg(long, value_name = "auto|none|reset|/dev/...", requires = "b2c")]
    cache_device: Option<CacheDevice>,
    /// Add b2c.extra_args_url=$secrets_url: each boot fetches the machine's
    /// one-time `secrets` as more parameters, keeping credentials out of the script.
    #[arg(long, requires = "b2c")]
    secrets_args: bool,
    /// A boot2container volume NAME mirrored to the machine's scratch bucket
    /// (`[scratch]` in bootgate.toml). OPTIONS are setup_volume's, comma
    /// separated (default: pull_on=pipeline_start,push_on=changes,overwrite,preserve,remove).
    /// Writes the profile's `secrets` and implies --secrets-args.
    #[arg(long, value_name = "NAME[:OPTIONS]", requires = "b2c")]
    scratch_volume: Option<ScratchVolume>,
    /// Extra kernel command-line text, e.g. 'console=ttyAMA0,115200' (repeatable).
    #[arg(
        long,
        value_name = "EXTRA",
        requires = "b2c",
        allow_hyphen_values = true
    )]
    cmdline: Vec<RawCmdline>,
    /// A variable for the profile's vars.toml (repeatable); machines' own
    /// vars.toml override it.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<VarAssignment>,
    /// Rewrite the script (and vars.toml, if --var is given) of an existing profile.
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    name: String,
}

pub fn run(dir: &DataDir, cmd: ProfileCommand) -> Result<()> {
    let dir = DataDir::open(dir.root())?;
    match cmd {
        ProfileCommand::Create(args) => create(&dir, *args)?,
        ProfileCommand::List(args) => {
            let profiles = profiles::list(&dir)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&profiles)?);
                return Ok(());
            }
            let width = super::column_width("NAME", profiles.iter().map(|p| p.name.as_str()));
            println!("{:width$}  {:8}  FETCHES", "NAME", "MACHINES");
            for p in &profiles {
                let fetches: Vec<&str> = p.fetches.iter().map(|f| f.name.as_str()).collect();
                println!(
                    "{:width$}  {:8}  {}",
                    p.name,
                    p.machines.len(),
                    fetches.join(" ")
                );
            }
        }
        ProfileCommand::Show(args) => {
            let info = profiles::show(&dir, &args.name)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            println!("name:      {}", info.name);
            println!("folder:    {}", info.dir.display());
            println!("machines:  {}", list_or_dash(&info.machines));
            println!("files:     {}", list_or_dash(&info.files));
            for fetch in &info.fetches {
                let from = match fetch.source {
                    Source::Profile => "the profile's folder",
                    Source::Asset => "shared asset",
                    Source::Missing => "MISSING: neither an asset nor a profile file",
                };
                println!("fetches:   /files/{} ({from})", fetch.name);
            }
            if let Some(vars) = &info.vars {
                println!("vars.toml:\n{}", indent(vars));
            }
            match &info.script {
                Some(script) => println!("boot.ipxe:\n{}", indent(script)),
                None => println!("boot.ipxe: (none: its machines get files/default/boot.ipxe)"),
            }
        }
        ProfileCommand::Rm(args) => {
            profiles::remove(&dir, &args.name)?;
            eprintln!("removed profile {}", args.name);
        }
    }
    Ok(())
}

fn create(dir: &DataDir, args: CreateArgs) -> Result<()> {
    let script = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            if !text.starts_with("#!ipxe") {
                eprintln!(
                    "warning: {} does not start with #!ipxe; iPXE will not run it as a script",
                    path.display()
                );
            }
            Script::Text(text)
        }
        None => Script::B2c(B2cConfig {
            kernel: args.kernel,
            initramfs: args.initramfs,
            dtb: args.dtb,
            run: args.run,
            ntp_peer: args.ntp_peer,
            cache_device: args.cache_device,
            params: args
                .b2c
                .into_iter()
                .filter_map(|arg| match arg {
                    B2cArg::Param(param) => Some(param),
                    B2cArg::Generator => None,
                })
                .collect(),
            secrets_args: args.secrets_args || args.scratch_volume.is_some(),
            cmdline: args.cmdline,
        }),
    };
    let secrets = args.scratch_volume.as_ref().map(ScratchVolume::secrets);
    let opts = CreateOptions {
        secrets,
        script,
        vars: args.vars,
        replace: args.replace,
    };
    let created = profiles::create(dir, &args.name, opts)?;
    for warning in &created.warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "profile {} written to {}",
        args.name,
        created.dir.join(crate::datadir::SCRIPT_FILE).display()
    );
    eprintln!(
        "next: bootgate machine add NAME --profile {0} (or machine set-profile NAME {0})",
        args.name
    );
    print!("{}", created.script);
    Ok(())
}

fn list_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
