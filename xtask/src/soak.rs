//! `cargo xtask soak --power-cuts N`: power cuts under load, and what survives them.
//!
//! One run folder, `target/tank-soak/seed-<SEED>/`, holds the appliance's two blank disks
//! (removed after a soak that lost nothing, kept otherwise).
//! The soak boots the appliance (with the test client guest on a socket link, as the NFS tests
//! do), creates the pool, the datasets `vms` (NFS) and `media` (SMB), the user `alice` and a
//! snapshot task every minute, then N times:
//!
//! 1. starts the cycle's mix of load ([`CutPlan`]): files written and fsynced over NFS and over
//!    CIFS by the client guest's kernel clients, console configuration changes (datasets
//!    created and destroyed, NFS shares added and removed, an SMB share's masks, alice's
//!    password) and snapshots;
//! 2. kills QEMU (SIGKILL: a power cut) at the plan's moment;
//! 3. boots again on the same disks and checks that the pool mounts, that every file whose
//!    write and fsync had returned reads back with its checksum (`file checksum` on the
//!    console), and that the configuration in force is the last one the console confirmed or
//!    the change in flight at the cut ([`judge`]);
//! 4. powers off cleanly and runs `btrfs check --readonly` on the disk images on the host.
//!
//! The seed fixes each cycle's plan (which loads, the cut's moment, the file sizes and the
//! order of the changes); the guests' timing does the rest, so a seed repeats the plan, not
//! the exact interleaving. What does not live here: QEMU command lines and the console and
//! client harnesses (`tank_tests`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tank_test_agent::pattern;
use tank_tests::client::{self, Client, Link};
use tank_tests::guest::Guest;
use tank_tests::qemu::{self, Accel, Forward};

/// The size of each of the two sparse data disks.
const DISK_SIZE: u64 = 4 << 30;
/// The earliest and latest cut, counted from the start of the load.
const CUT_MIN_MS: u64 = 3_000;
const CUT_MAX_MS: u64 = 25_000;
/// The largest file a write makes.
const MAX_FILE: u64 = 2 << 20;
/// The SMB account.
const SMB_USER: &str = "alice";
/// The client guest's subnet, allowed on every NFS export.
const SUBNET: &str = "10.0.3.0/24";
/// The create masks the SMB share cycles through.
const MASKS: [u32; 4] = [0o644, 0o664, 0o640, 0o660];
/// At most this many scratch datasets exist at once.
const MAX_SCRATCH: usize = 4;
/// The console's timeout for one command.
const CONSOLE_T: Duration = Duration::from_secs(120);
/// How long a boot may take to reach a mounted pool (TCG on a shared machine).
const BOOT_T: Duration = Duration::from_secs(240);

/// What the soak was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub power_cuts: u32,
    pub seed: u64,
}

/// One kind of load running when the power goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// Files written and fsynced over NFSv4.2 by the client guest.
    Nfs,
    /// Files written and fsynced over SMB 3.1.1 (the client guest's CIFS mount).
    Smb,
    /// Console configuration changes.
    Config,
    /// `snapshot create` on the console.
    Snapshot,
}

impl Load {
    pub const ALL: [Load; 4] = [Load::Nfs, Load::Smb, Load::Config, Load::Snapshot];

    pub fn name(self) -> &'static str {
        match self {
            Load::Nfs => "nfs",
            Load::Smb => "smb",
            Load::Config => "config",
            Load::Snapshot => "snapshot",
        }
    }
}

/// One cycle: which loads run, when the power goes, the seed of the cycle's choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutPlan {
    pub loads: Vec<Load>,
    pub cut_after: Duration,
    pub seed: u64,
}

impl CutPlan {
    /// The plan's loads among `these`.
    fn loads_of(&self, these: &[Load]) -> Vec<Load> {
        self.loads
            .iter()
            .copied()
            .filter(|l| these.contains(l))
            .collect()
    }
}

/// The plan of every cycle, from the soak's seed: each load runs with probability 3/5 (at least
/// one runs), and the cut comes between [`CUT_MIN_MS`] and [`CUT_MAX_MS`] into the load.
pub fn schedule(seed: u64, cuts: u32) -> Vec<CutPlan> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..cuts)
        .map(|_| {
            let mut loads: Vec<Load> = Load::ALL
                .iter()
                .copied()
                .filter(|_| rng.u8(0..5) < 3)
                .collect();
            if loads.is_empty() {
                loads.push(Load::ALL[rng.usize(..Load::ALL.len())]);
            }
            CutPlan {
                loads,
                cut_after: Duration::from_millis(rng.u64(CUT_MIN_MS..=CUT_MAX_MS)),
                seed: rng.u64(..),
            }
        })
        .collect()
}

/// The part of the appliance's state the soak changes and checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigState {
    /// Every dataset.
    pub datasets: BTreeSet<String>,
    /// The datasets exported over NFS.
    pub nfs: BTreeSet<String>,
    /// The create mask of the SMB share `media`.
    pub smb_mask: u32,
    /// The manual snapshots of `vms` (`vms@soak-...`).
    pub snapshots: BTreeSet<String>,
    /// alice's password (observed: the one that logs in over SMB, or empty).
    pub password: String,
}

/// How the configuration after a cut compares with what the console confirmed before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The last confirmed generation (its number, from 1).
    Committed(usize),
    /// The change that was in flight at the cut.
    InFlight,
    /// Neither: what differs from the last confirmed generation.
    Lost(String),
}

/// Compares the configuration the appliance shows after a cut with the confirmed generations
/// (`history`, oldest first) and the change in flight at the cut.
pub fn judge(
    history: &[ConfigState],
    in_flight: Option<&ConfigState>,
    observed: &ConfigState,
) -> Verdict {
    let Some(last) = history.last() else {
        return Verdict::Lost("no generation was ever confirmed".into());
    };
    if observed == last {
        return Verdict::Committed(history.len());
    }
    if in_flight == Some(observed) {
        return Verdict::InFlight;
    }
    let what = differences(last, observed);
    match history.iter().rposition(|s| s == observed) {
        Some(i) => Verdict::Lost(format!(
            "the configuration went back to generation {} of {}: {what}",
            i + 1,
            history.len()
        )),
        None => Verdict::Lost(format!(
            "the configuration is none of the confirmed generations: {what}"
        )),
    }
}

/// What `got` has that `want` lacks and the other way round, e.g. `dataset s1-2 missing`.
fn differences(want: &ConfigState, got: &ConfigState) -> String {
    let mut out = Vec::new();
    let mut sets = |what: &str, w: &BTreeSet<String>, g: &BTreeSet<String>| {
        out.extend(w.difference(g).map(|x| format!("{what} {x} missing")));
        out.extend(g.difference(w).map(|x| format!("{what} {x} unexpected")));
    };
    sets("dataset", &want.datasets, &got.datasets);
    sets("nfs share", &want.nfs, &got.nfs);
    sets("snapshot", &want.snapshots, &got.snapshots);
    if want.smb_mask != got.smb_mask {
        out.push(format!(
            "smb share media create mask {:04o}, not {:04o}",
            got.smb_mask, want.smb_mask
        ));
    }
    if want.password != got.password {
        out.push(if got.password.is_empty() {
            format!("{SMB_USER} logs in with none of the passwords set")
        } else {
            format!("{SMB_USER}'s password is an older one")
        });
    }
    out.join(", ")
}

/// The rows of a console table below the line that starts with `header`, up to the first
/// blank line (an empty table prints no header, so no rows).
fn table_rows<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = out.lines();
    if !lines.by_ref().any(|l| l.starts_with(header)) {
        return Vec::new();
    }
    lines.take_while(|l| !l.trim().is_empty()).collect()
}

/// The first word of each row.
fn first_column(out: &str, header: &str) -> BTreeSet<String> {
    table_rows(out, header)
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The datasets `dataset list` shows, and those it marks as not mounted.
fn parse_datasets(out: &str) -> (BTreeSet<String>, Vec<String>) {
    let rows = table_rows(out, "NAME ");
    let unmounted = rows
        .iter()
        .filter(|l| l.contains("(NOT MOUNTED)"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    (first_column(out, "NAME "), unmounted)
}

/// The manual `vms@soak-...` snapshots in `snapshot list vms`.
fn parse_snapshots(out: &str) -> BTreeSet<String> {
    first_column(out, "SNAPSHOT ")
        .into_iter()
        .filter(|s| s.starts_with("vms@soak-"))
        .collect()
}

/// The create mask of share `media` in `smb share list` (`masks=0664/0775`).
fn parse_smb_mask(out: &str) -> Option<u32> {
    let row = table_rows(out, "SHARE ")
        .into_iter()
        .find(|l| l.split_whitespace().next() == Some("media"))?;
    let masks = row.split("masks=").nth(1)?;
    u32::from_str_radix(masks.split('/').next()?, 8).ok()
}

/// A file whose write and fsync returned before the cut.
#[derive(Clone, Debug)]
struct Written {
    /// The console's name for it, `vms/c3-5.bin`.
    path: String,
    size: u64,
    seed: u64,
}

/// What the loads share with the thread that cuts the power.
#[derive(Default)]
struct Ledger {
    files: Vec<Written>,
    /// The write in flight, described.
    writing: Option<String>,
    /// The console command in flight.
    console: Option<String>,
    /// The confirmed generations, oldest first.
    history: Vec<ConfigState>,
    /// The generation the console command in flight would make.
    in_flight: Option<ConfigState>,
}

impl Ledger {
    fn during(&self) -> String {
        let mut what: Vec<String> = self.writing.iter().cloned().collect();
        what.extend(self.console.iter().map(|c| format!("console '{c}'")));
        if what.is_empty() {
            "a pause in the load".into()
        } else {
            what.join(" + ")
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

/// The soak's running totals.
#[derive(Default)]
struct Totals {
    survived: u32,
    files_checked: u64,
    lost_files: u64,
    losses: Vec<String>,
}

/// Runs the soak; fails if any cut lost something.
pub fn run(board: &'static board::Board, options: Options) -> Result<()> {
    let started = Instant::now();
    let image_dir = crate::build_image(board, false)?;
    crate::build_test_client()?;
    for (tool, package) in [
        ("btrfs", "btrfs-progs"),
        ("losetup", "util-linux"),
        ("smbclient", "smbclient"),
    ] {
        if Command::new("which")
            .arg(tool)
            .output()
            .map_or(true, |o| !o.status.success())
        {
            bail!("the soak needs {tool}: install {package} (cargo xtask prereqs)");
        }
    }
    let dir = crate::root()
        .join("target/tank-soak")
        .join(format!("seed-{}", options.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut disks = Vec::new();
    for name in ["sda.img", "sdb.img"] {
        let path = dir.join(name);
        qemu::ensure_disk(&path, DISK_SIZE).with_context(|| format!("{}", path.display()))?;
        disks.push(path);
    }
    let plans = schedule(options.seed, options.power_cuts);
    println!(
        "soak: seed {} (repeat with --seed {}), {} power cuts, disks in {}, console logs in {}",
        options.seed,
        options.seed,
        options.power_cuts,
        dir.display(),
        tank_tests::runs_dir().display()
    );
    let mut soak = Soak {
        board,
        image_dir,
        disks,
        history: Vec::new(),
        totals: Totals::default(),
        accel: Accel::from_env().map_err(anyhow::Error::msg)?,
    };
    let mut setup = soak.boot_pair("soak-setup", false)?;
    soak.setup(&mut setup)?;
    let mut first = Some(setup);
    for (i, plan) in plans.iter().enumerate() {
        let cycle = i as u32 + 1;
        let mut pair = match first.take() {
            Some(p) => p,
            None => soak.boot_pair(&format!("soak-c{cycle}-load"), true)?,
        };
        soak.prepare_client(&mut pair, cycle)?;
        let cut = soak.load_and_cut(pair, plan, cycle)?;
        let keep_going = soak.check(cycle, options.power_cuts, plan, cut)?;
        if !keep_going {
            break;
        }
    }
    let t = &soak.totals;
    println!(
        "soak: {} of {} power cuts survived, {} fsynced files checked, {} lost ({:.1} min)",
        t.survived,
        options.power_cuts,
        t.files_checked,
        t.lost_files,
        started.elapsed().as_secs_f64() / 60.0
    );
    if t.losses.is_empty() {
        // Nothing to look into: the disks go.
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        for l in &t.losses {
            println!("soak: {l}");
        }
        println!(
            "soak: the disks are kept in {}, the console logs in {}",
            dir.display(),
            tank_tests::runs_dir().display()
        );
        bail!(
            "{} of {} power cuts lost data or configuration; repeat with --seed {}",
            options.power_cuts - t.survived,
            options.power_cuts,
            options.seed
        );
    }
    Ok(())
}

/// The appliance and, for a load, the client guest.
struct Pair {
    nas: Guest,
    client: Option<Client>,
    link: Link,
    /// alice's password when the client mounts.
    password: String,
}

/// What a cycle's load left to check.
struct Cut {
    at: Duration,
    during: String,
    files: Vec<Written>,
    in_flight: Option<ConfigState>,
}

struct Soak {
    board: &'static board::Board,
    image_dir: PathBuf,
    disks: Vec<PathBuf>,
    history: Vec<ConfigState>,
    totals: Totals,
    accel: Accel,
}

impl Soak {
    fn last(&self) -> ConfigState {
        self.history.last().cloned().unwrap_or_default()
    }

    /// Starts the appliance alone (its `eth1` on `link`, SMB forwarded to a free host port) and
    /// waits for the prompt and, if `wait_mounted`, the mounted pool.
    fn boot_nas(&self, name: &str, link: &Link, wait_mounted: bool) -> Result<(Guest, u16)> {
        let mut config = client::appliance_config(&self.disks, std::slice::from_ref(link));
        config.board = self.board;
        config.image_dir = self.image_dir.clone();
        config.accel = self.accel;
        let smb_port = qemu::free_port().context("no free host port for the SMB forward")?;
        config.forwards.push(Forward {
            udp: false,
            host: smb_port,
            guest: 445,
        });
        let mut nas = Guest::start(config, name)?;
        nas.wait_prompt(BOOT_T)?;
        if wait_mounted {
            wait_pool(&mut nas, "tank mounted")?;
        }
        Ok((nas, smb_port))
    }

    /// Starts the appliance on a fresh link, then the client guest; waits for the client's agent
    /// and, if `wait_mounted`, the mounted pool and the link's address.
    fn boot_pair(&self, name: &str, wait_mounted: bool) -> Result<Pair> {
        let link = Link::new()?;
        let mut config = client::appliance_config(&self.disks, std::slice::from_ref(&link));
        config.board = self.board;
        config.image_dir = self.image_dir.clone();
        config.accel = self.accel;
        let mut nas = Guest::start(config, name)?;
        // A client QEMU that starts before this one listens on the link stays unplugged: it
        // boots once the appliance's console is up, while the pool assembles.
        nas.wait_prompt(BOOT_T)?;
        let spec = link.client();
        let client_name = format!("{name}-client");
        let booting = std::thread::spawn(move || Client::boot(&client_name, &spec));
        let want = format!("{}/{}", link.listen_ip, link.prefix);
        let iface = link.appliance_iface();
        let ready = (|| {
            if !wait_mounted {
                return Ok(());
            }
            wait_pool(&mut nas, "tank mounted")?;
            // The link's address comes from the configuration on the pool, once the NIC's
            // driver is in: the client mounts only after it is there.
            nas.run_until("network show", BOOT_T, |s| {
                s.lines().any(|l| l.contains(&iface) && l.contains(&want))
            })
            .map(drop)
        })();
        let client = booting
            .join()
            .map_err(|_| anyhow::anyhow!("the thread booting the test client panicked"))??;
        ready?;
        Ok(Pair {
            nas,
            client: Some(client),
            link,
            password: self.last().password,
        })
    }

    /// The pool, the shared datasets, the user and the snapshot task: generation 1.
    fn setup(&mut self, pair: &mut Pair) -> Result<()> {
        let nas = &mut pair.nas;
        client::configure_appliance_link(nas, &pair.link)?;
        crate::bench::create_pool(nas)?;
        let password = password(0);
        for line in [
            "dataset create vms".to_string(),
            "dataset create media mode 0777".into(),
            format!("nfs share add vms clients {SUBNET} no_root_squash"),
            format!("smb share add media create_mask {:04o}", MASKS[0]),
            "snapshot task add vms every minute keep 3".into(),
        ] {
            ok(nas, &line)?;
        }
        let out = nas.run_with_password(&format!("user add {SMB_USER}"), &password)?;
        if out.contains("error:") {
            bail!("'user add {SMB_USER}' failed:\n{out}");
        }
        pair.password = password.clone();
        self.history = vec![ConfigState {
            datasets: ["vms", "media"].map(String::from).into(),
            nfs: ["vms".to_string()].into(),
            smb_mask: MASKS[0],
            snapshots: BTreeSet::new(),
            password,
        }];
        Ok(())
    }

    /// Mounts both shares in the client and writes one small file to each (which also waits
    /// out the NFS server's grace period after a cut).
    fn prepare_client(&self, pair: &mut Pair, cycle: u32) -> Result<()> {
        let Some(c) = pair.client.as_mut() else {
            bail!("no client guest")
        };
        let ip = pair.link.listen_ip;
        let step = |r: client::Result<()>| r.map_err(|e| anyhow::anyhow!("{e}"));
        // The first packets on a fresh link can go unanswered: wait until NFS's port answers.
        c.timeout = Duration::from_secs(10);
        let deadline = Instant::now() + Duration::from_secs(90);
        while let Err(e) = c.tcp_connect(&pair.link.listen_addr(2049)) {
            if Instant::now() >= deadline {
                bail!("the client cannot reach the appliance's NFS port: {e}");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        c.timeout = Duration::from_secs(150);
        step(c.mkdir_all("/mnt/vms"))?;
        step(
            c.mount(
                "nfs4",
                &format!("{ip}:/mnt/tank/vms"),
                "/mnt/vms",
                "vers=4.2",
            )
            .map(drop),
        )?;
        step(c.mkdir_all("/mnt/smb"))?;
        step(
            c.mount(
                "cifs",
                &format!("//{ip}/media"),
                "/mnt/smb",
                &format!("vers=3.1.1,username={SMB_USER},password={}", pair.password),
            )
            .map(drop),
        )?;
        for dir in ["vms", "smb"] {
            step(
                c.write(&format!("/mnt/{dir}/c{cycle}-warm.bin"), 4096, 1)
                    .map(drop),
            )?;
        }
        c.timeout = Duration::from_secs(60);
        Ok(())
    }

    /// Runs the plan's load and cuts the power at its moment.
    fn load_and_cut(&mut self, mut pair: Pair, plan: &CutPlan, cycle: u32) -> Result<Cut> {
        let Some(mut client) = pair.client.take() else {
            bail!("no client guest")
        };
        let nas_pid = pair.nas.pid();
        let client_pid = client.guest().pid();
        let cut = AtomicBool::new(false);
        let ledger = Mutex::new(Ledger {
            history: self.history.clone(),
            ..Ledger::default()
        });
        let nas = &mut pair.nas;
        let load_started = Instant::now();
        let (during, writes, console) = std::thread::scope(|s| {
            let writer = s.spawn(|| write_load(&mut client, plan, cycle, &ledger, &cut));
            let console = s.spawn(|| console_load(nas, plan, cycle, &ledger, &cut));
            std::thread::sleep(plan.cut_after);
            cut.store(true, Ordering::SeqCst);
            let during = lock(&ledger).during();
            power_cut(nas_pid);
            power_cut(client_pid);
            let join = |r: std::thread::Result<Result<()>>| {
                r.unwrap_or_else(|_| Err(anyhow::anyhow!("a load thread panicked")))
            };
            (during, join(writer.join()), join(console.join()))
        });
        let at = plan.cut_after.min(load_started.elapsed());
        drop(client);
        drop(pair);
        writes.context("the file load failed before the power cut")?;
        console.context("the console load failed before the power cut")?;
        let mut ledger = ledger.into_inner().unwrap_or_else(|p| p.into_inner());
        self.history = std::mem::take(&mut ledger.history);
        Ok(Cut {
            at,
            during,
            files: ledger.files,
            in_flight: ledger.in_flight,
        })
    }

    /// Boots after the cut, checks, powers off, checks the disks; prints the cycle's line.
    /// Returns whether the soak can go on.
    fn check(&mut self, cycle: u32, cuts: u32, plan: &CutPlan, cut: Cut) -> Result<bool> {
        let loads: Vec<&str> = plan.loads.iter().map(|l| l.name()).collect();
        let head = format!(
            "cut {cycle}/{cuts} at {:.1} s ({}) during {}",
            cut.at.as_secs_f64(),
            loads.join("+"),
            cut.during
        );
        let link = Link::new()?;
        let (mut nas, smb_port) = match self.boot_nas(&format!("soak-c{cycle}-check"), &link, false)
        {
            Ok(v) => v,
            Err(e) => return self.fatal(&head, format!("the appliance did not boot: {e:#}")),
        };
        if let Err(e) = wait_pool(&mut nas, "tank mounted") {
            return self.fatal(&head, format!("the pool did not mount: {e:#}"));
        }
        let mut lost = Vec::new();
        let mut lost_files = 0;
        for f in &cut.files {
            let want = pattern::sha256_hex(f.seed, f.size);
            let out = nas.run(&format!("file checksum {}", f.path), CONSOLE_T)?;
            let got = out.split("sha256 ").nth(1).map(str::trim).unwrap_or("");
            if got != want {
                lost_files += 1;
                lost.push(format!(
                    "{} ({} bytes, fsynced): {}",
                    f.path,
                    f.size,
                    out.trim()
                ));
            }
        }
        self.totals.files_checked += cut.files.len() as u64;
        self.totals.lost_files += lost_files;
        let (observed, unmounted) =
            observe(&mut nas, smb_port, &self.history, cut.in_flight.as_ref())?;
        if !unmounted.is_empty() {
            lost.push(format!("datasets not mounted: {}", unmounted.join(", ")));
        }
        let generation = match judge(&self.history, cut.in_flight.as_ref(), &observed) {
            Verdict::Committed(g) => format!("generation {g}"),
            Verdict::InFlight => {
                if let Some(s) = cut.in_flight.clone() {
                    self.history.push(s);
                }
                format!("generation {} (the change in flight)", self.history.len())
            }
            Verdict::Lost(what) => {
                lost.push(what);
                // Go on from what the appliance has.
                self.history.push(observed.clone());
                format!("generation {} (as found)", self.history.len())
            }
        };
        nas.send(b"poweroff\r")?;
        let exit = nas.wait_exit(Duration::from_secs(120));
        drop(nas);
        match exit {
            Ok(s) if s.success() => {}
            Ok(s) => lost.push(format!("QEMU exited with {s} after poweroff")),
            Err(e) => lost.push(format!("no clean poweroff: {e:#}")),
        }
        if let Err(e) = btrfs_check(&self.disks) {
            lost.push(format!("btrfs check: {e:#}"));
        }
        if lost.is_empty() {
            self.totals.survived += 1;
            println!(
                "{head}: survived ({} fsynced files, config {generation})",
                cut.files.len()
            );
        } else {
            let what = lost.join("; ");
            println!("{head}: LOST {what}");
            self.totals.losses.push(format!(
                "cut {cycle}: {what} (plan {:?}, cut at {:.1} s)",
                plan.loads,
                cut.at.as_secs_f64()
            ));
        }
        Ok(true)
    }

    /// A cut after which the soak cannot go on.
    fn fatal(&mut self, head: &str, what: String) -> Result<bool> {
        println!("{head}: LOST {what}");
        self.totals.losses.push(format!("{head}: {what}"));
        Ok(false)
    }
}

/// alice's password number `n`.
fn password(n: u32) -> String {
    format!("soak-Pw{n}")
}

/// Runs a console command that must succeed.
fn ok(nas: &mut Guest, line: &str) -> Result<String> {
    let out = nas.run(line, CONSOLE_T)?;
    if out.contains("error:") {
        bail!("'{line}' failed:\n{out}");
    }
    Ok(out)
}

fn wait_pool(nas: &mut Guest, state: &str) -> Result<()> {
    nas.run_until("status", BOOT_T, |s| {
        s.lines()
            .any(|l| l.trim_start().starts_with("pool ") && l.contains(state))
    })
    .map(drop)
}

/// SIGKILL to a QEMU: the power cut.
fn power_cut(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Sleeps `d` unless the power is cut first; returns whether it was.
fn pause(d: Duration, cut: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if cut.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cut.load(Ordering::SeqCst)
}

/// Writes and fsyncs files over NFS and SMB until the cut; each write that returns is
/// recorded.
fn write_load(
    c: &mut Client,
    plan: &CutPlan,
    cycle: u32,
    ledger: &Mutex<Ledger>,
    cut: &AtomicBool,
) -> Result<()> {
    let kinds = plan.loads_of(&[Load::Nfs, Load::Smb]);
    if kinds.is_empty() {
        return Ok(());
    }
    let mut rng = fastrand::Rng::with_seed(plan.seed ^ 0x5752_4954_4552);
    for k in 1.. {
        if cut.load(Ordering::SeqCst) {
            break;
        }
        let kind = kinds[rng.usize(..kinds.len())];
        let (mount, dataset) = match kind {
            Load::Nfs => ("/mnt/vms", "vms"),
            _ => ("/mnt/smb", "media"),
        };
        let name = format!("c{cycle}-{k}.bin");
        let size = rng.u64(4096..=MAX_FILE);
        let seed = rng.u64(..);
        lock(ledger).writing = Some(format!(
            "{} write {dataset}/{name} ({size} bytes)",
            kind.name()
        ));
        match c.write(&format!("{mount}/{name}"), size, seed) {
            Ok(t) => {
                if t.sha256 != pattern::sha256_hex(seed, size) {
                    bail!("the write of {mount}/{name} returned a wrong checksum: {t:?}");
                }
                let mut l = lock(ledger);
                l.writing = None;
                l.files.push(Written {
                    path: format!("{dataset}/{name}"),
                    size,
                    seed,
                });
            }
            Err(_) if cut.load(Ordering::SeqCst) => break,
            Err(e) => bail!("writing {mount}/{name}: {e}"),
        }
    }
    Ok(())
}

/// One console change: the line and the generation it makes.
enum Change {
    Plain(String),
    Destroy(String),
    Password(String),
}

/// Makes console changes and snapshots until the cut; each confirmed one becomes a generation.
fn console_load(
    nas: &mut Guest,
    plan: &CutPlan,
    cycle: u32,
    ledger: &Mutex<Ledger>,
    cut: &AtomicBool,
) -> Result<()> {
    let kinds = plan.loads_of(&[Load::Config, Load::Snapshot]);
    if kinds.is_empty() {
        return Ok(());
    }
    let mut rng = fastrand::Rng::with_seed(plan.seed ^ 0x434f_4e53_4f4c);
    for k in 1.. {
        if pause(Duration::from_millis(rng.u64(200..=1500)), cut) {
            break;
        }
        let last = lock(ledger).history.last().cloned().unwrap_or_default();
        let (change, next) = match kinds[rng.usize(..kinds.len())] {
            Load::Snapshot => {
                let name = format!("vms@soak-{cycle}-{k}");
                let mut next = last.clone();
                next.snapshots.insert(name.clone());
                (Change::Plain(format!("snapshot create {name}")), next)
            }
            _ => config_change(&mut rng, &last, cycle, k),
        };
        let line = match &change {
            Change::Plain(l) | Change::Destroy(l) => l.clone(),
            Change::Password(_) => format!("user passwd {SMB_USER}"),
        };
        {
            let mut l = lock(ledger);
            l.console = Some(line.clone());
            l.in_flight = Some(next.clone());
        }
        let result = match &change {
            Change::Plain(l) => nas.run(l, CONSOLE_T),
            Change::Password(pw) => nas.run_with_password(&line, pw),
            Change::Destroy(l) => destroy(nas, l),
        };
        match result {
            Ok(out) if !out.contains("error:") => {
                let mut l = lock(ledger);
                l.history.push(next);
                l.in_flight = None;
                l.console = None;
            }
            Ok(out) => bail!("'{line}' failed:\n{out}"),
            Err(_) if cut.load(Ordering::SeqCst) => break,
            Err(e) => return Err(e.context(format!("'{line}'"))),
        }
    }
    Ok(())
}

/// `dataset destroy NAME`, confirmed with the name.
fn destroy(nas: &mut Guest, line: &str) -> Result<String> {
    let name = line.rsplit(' ').next().unwrap_or_default();
    nas.skip_output();
    nas.send(format!("{line}\r").as_bytes())?;
    let question = nas.expect("confirm> ", CONSOLE_T)?;
    if question.contains("error:") {
        return Ok(question);
    }
    nas.run(name, CONSOLE_T)
}

/// A random configuration change from `last`.
fn config_change(
    rng: &mut fastrand::Rng,
    last: &ConfigState,
    cycle: u32,
    k: u32,
) -> (Change, ConfigState) {
    let scratch: Vec<&String> = last
        .datasets
        .iter()
        .filter(|d| d.starts_with('s'))
        .collect();
    let unshared: Vec<&String> = scratch
        .iter()
        .copied()
        .filter(|d| !last.nfs.contains(*d))
        .collect();
    let shared: Vec<&String> = scratch
        .iter()
        .copied()
        .filter(|d| last.nfs.contains(*d))
        .collect();
    let mut next = last.clone();
    loop {
        match rng.u8(0..6) {
            0 if scratch.len() < MAX_SCRATCH => {
                let name = format!("s{cycle}-{k}");
                next.datasets.insert(name.clone());
                return (Change::Plain(format!("dataset create {name}")), next);
            }
            1 if !unshared.is_empty() => {
                let name = unshared[rng.usize(..unshared.len())].clone();
                next.datasets.remove(&name);
                return (Change::Destroy(format!("dataset destroy {name}")), next);
            }
            2 if !unshared.is_empty() => {
                let name = unshared[rng.usize(..unshared.len())].clone();
                next.nfs.insert(name.clone());
                return (
                    Change::Plain(format!("nfs share add {name} clients {SUBNET}")),
                    next,
                );
            }
            3 if !shared.is_empty() => {
                let name = shared[rng.usize(..shared.len())].clone();
                next.nfs.remove(&name);
                return (Change::Plain(format!("nfs share remove {name}")), next);
            }
            4 => {
                let others: Vec<u32> = MASKS
                    .iter()
                    .copied()
                    .filter(|&m| m != last.smb_mask)
                    .collect();
                next.smb_mask = others[rng.usize(..others.len())];
                return (
                    Change::Plain(format!(
                        "smb share set media create_mask {:04o}",
                        next.smb_mask
                    )),
                    next,
                );
            }
            5 => {
                next.password = password(cycle * 1000 + k);
                return (Change::Password(next.password.clone()), next);
            }
            _ => {}
        }
    }
}

/// The state the appliance shows, and the datasets it lists as not mounted. The password is
/// the first of the candidates (the one in flight, the last confirmed, older ones) that logs
/// in over SMB.
fn observe(
    nas: &mut Guest,
    smb_port: u16,
    history: &[ConfigState],
    in_flight: Option<&ConfigState>,
) -> Result<(ConfigState, Vec<String>)> {
    let (datasets, unmounted) = parse_datasets(&ok(nas, "dataset list")?);
    let nfs = first_column(&ok(nas, "nfs share list")?, "DATASET ");
    let smb = ok(nas, "smb share list")?;
    let smb_mask = parse_smb_mask(&smb).unwrap_or(0);
    let snapshots = parse_snapshots(&ok(nas, "snapshot list vms")?);
    let mut candidates: Vec<String> = Vec::new();
    for s in in_flight.into_iter().chain(history.iter().rev()) {
        if !candidates.contains(&s.password) {
            candidates.push(s.password.clone());
        }
    }
    let mut password = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    'tries: loop {
        for pw in &candidates {
            if smb_login(smb_port, pw) {
                password = pw.clone();
                break 'tries;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok((
        ConfigState {
            datasets,
            nfs,
            smb_mask,
            snapshots,
            password,
        },
        unmounted,
    ))
}

/// Whether alice logs in to `media` with `password` (smbclient on the host).
fn smb_login(port: u16, password: &str) -> bool {
    Command::new("timeout")
        .arg("60")
        .arg("smbclient")
        .env("LC_ALL", "C.UTF-8")
        .arg("//127.0.0.1/media")
        .arg("-p")
        .arg(port.to_string())
        .arg("-U")
        .arg(format!("{SMB_USER}%{password}"))
        .args(["-c", "ls"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `btrfs check --readonly` on both members, through read-only loop devices that are both
/// attached (a RAID1 needs both visible). Host commands run under `timeout`.
fn btrfs_check(disks: &[PathBuf]) -> Result<()> {
    let mut loops = Vec::new();
    let result = (|| -> Result<()> {
        for d in disks {
            loops.push(losetup(d)?);
        }
        for l in &loops {
            let _ = Command::new("btrfs").args(["device", "scan", l]).output();
        }
        for l in &loops {
            let out = Command::new("timeout")
                .args(["600", "btrfs", "check", "--readonly", l])
                .output()
                .context("cannot run btrfs check (btrfs-progs)")?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !out.status.success() || !text.contains("no error found") {
                bail!("{l} is not clean ({}):\n{text}", out.status);
            }
        }
        Ok(())
    })();
    for l in &loops {
        let _ = Command::new("btrfs")
            .args(["device", "scan", "--forget", l])
            .output();
        let _ = Command::new("losetup").args(["-d", l]).output();
    }
    result
}

fn losetup(disk: &Path) -> Result<String> {
    let out = Command::new("timeout")
        .args(["60", "losetup", "--find", "--show", "--read-only"])
        .arg(disk)
        .output()
        .context("cannot run losetup (util-linux)")?;
    if !out.status.success() {
        bail!(
            "losetup {} failed (the soak runs as root): {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_fixes_the_schedule() {
        let a = schedule(42, 20);
        assert_eq!(a.len(), 20);
        assert_eq!(a, schedule(42, 20));
        assert_ne!(a, schedule(43, 20));
        // A longer soak starts with the same cuts.
        assert_eq!(&schedule(42, 25)[..20], &a[..]);
        for p in &a {
            assert!(!p.loads.is_empty(), "{p:?}");
            assert!(
                p.cut_after >= Duration::from_millis(CUT_MIN_MS)
                    && p.cut_after <= Duration::from_millis(CUT_MAX_MS),
                "{p:?}"
            );
        }
        // Over many cuts every load runs, alone and in every size of mix, and the moments
        // spread.
        let many = schedule(7, 200);
        for load in Load::ALL {
            assert!(many.iter().any(|p| p.loads.contains(&load)), "{load:?}");
            assert!(many.iter().any(|p| p.loads == [load]), "{load:?} alone");
        }
        for n in 1..=Load::ALL.len() {
            assert!(many.iter().any(|p| p.loads.len() == n), "{n} loads");
        }
        let moments: BTreeSet<u128> = many.iter().map(|p| p.cut_after.as_millis()).collect();
        assert!(moments.len() > 150, "{}", moments.len());
    }

    fn state(datasets: &[&str], nfs: &[&str], mask: u32, password: &str) -> ConfigState {
        ConfigState {
            datasets: datasets.iter().map(|s| s.to_string()).collect(),
            nfs: nfs.iter().map(|s| s.to_string()).collect(),
            smb_mask: mask,
            snapshots: BTreeSet::new(),
            password: password.into(),
        }
    }

    #[test]
    fn the_configuration_must_be_a_confirmed_generation() {
        let g1 = state(&["vms", "media"], &["vms"], 0o644, "pw0");
        let g2 = state(&["vms", "media", "s1-1"], &["vms"], 0o644, "pw0");
        let g3 = state(&["vms", "media", "s1-1"], &["vms", "s1-1"], 0o644, "pw0");
        let flight = state(&["vms", "media", "s1-1"], &["vms", "s1-1"], 0o664, "pw0");
        let history = [g1.clone(), g2.clone(), g3.clone()];
        assert_eq!(judge(&history, None, &g3), Verdict::Committed(3));
        assert_eq!(judge(&history, Some(&flight), &g3), Verdict::Committed(3));
        assert_eq!(judge(&history, Some(&flight), &flight), Verdict::InFlight);
        // A change the console confirmed is gone.
        match judge(&history, Some(&flight), &g2) {
            Verdict::Lost(what) => {
                assert!(what.contains("generation 2 of 3"), "{what}");
                assert!(what.contains("nfs share s1-1 missing"), "{what}");
            }
            v => panic!("{v:?}"),
        }
        // Something nobody asked for.
        let odd = state(&["vms", "media", "s1-1", "x"], &["vms", "s1-1"], 0o644, "");
        match judge(&history, None, &odd) {
            Verdict::Lost(what) => {
                assert!(what.contains("none of the confirmed"), "{what}");
                assert!(what.contains("dataset x unexpected"), "{what}");
                assert!(what.contains("none of the passwords"), "{what}");
            }
            v => panic!("{v:?}"),
        }
        // The in-flight change made only in part is no generation either.
        let half = state(&["vms", "media", "s1-1"], &["vms", "s1-1"], 0o664, "pw1");
        assert!(matches!(
            judge(&history, Some(&flight), &half),
            Verdict::Lost(_)
        ));
        assert!(matches!(judge(&[], None, &g1), Verdict::Lost(_)));
    }

    #[test]
    fn console_tables() {
        let datasets = "\
NAME                       USED      REFER  SNAPSHOTS      QUOTA COMPRESS OWNER       MODE MOUNTPOINT
vms                     1.0 MiB    1.0 MiB        0 B       none zstd     0:0          755 /mnt/tank/vms
s2-3                      16 KiB     16 KiB        0 B       none zstd     0:0          755 /mnt/tank/s2-3 (NOT MOUNTED)
";
        let (names, unmounted) = parse_datasets(datasets);
        assert_eq!(names, ["s2-3", "vms"].map(String::from).into());
        assert_eq!(unmounted, ["s2-3"]);
        assert!(
            parse_datasets("no datasets (create one with 'dataset create NAME')\n")
                .0
                .is_empty()
        );

        let nfs = "\
DATASET  PATH            CLIENTS      ACCESS  SQUASH  PORTS
vms      /mnt/tank/vms   10.0.3.0/24  rw      none    secure
s1-1     /mnt/tank/s1-1  10.0.3.0/24  rw      root    secure
";
        assert_eq!(
            first_column(nfs, "DATASET "),
            ["s1-1", "vms"].map(String::from).into()
        );
        assert!(first_column("no NFS shares; add one\n", "DATASET ").is_empty());

        let smb = "\
SHARE  DATASET  ACCESS  USERS  READ-ONLY  ALLOW  DENY  OPTIONS
media  media    rw      all    -          all    -     masks=0664/0775
";
        assert_eq!(parse_smb_mask(smb), Some(0o664));
        assert_eq!(parse_smb_mask("no SMB shares; add one\n"), None);

        let snaps = "\
SNAPSHOT                           CREATED               HELD  BY
vms@auto-1-20261204-1800           2026-12-04 18:00:00    0 B  task 1
vms@soak-2-4                       2026-12-04 18:00:07    0 B  manual

HELD is the space only that snapshot keeps (freed by destroying it)
";
        assert_eq!(parse_snapshots(snaps), ["vms@soak-2-4".to_string()].into());
    }

    #[test]
    fn config_changes_keep_to_their_rules() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = state(&["vms", "media"], &["vms"], 0o644, "pw0");
        for k in 0..300 {
            let (change, next) = config_change(&mut rng, &s, 1, k);
            let line = match &change {
                Change::Plain(l) | Change::Destroy(l) => l.clone(),
                Change::Password(_) => "user passwd".into(),
            };
            assert_ne!(next, s, "{line}");
            // The shared datasets stay; a dataset is never destroyed while exported.
            assert!(next.datasets.contains("vms") && next.datasets.contains("media"));
            assert!(next.nfs.is_subset(&next.datasets), "{line}: {next:?}");
            assert!(
                next.datasets.iter().filter(|d| d.starts_with('s')).count() <= MAX_SCRATCH,
                "{next:?}"
            );
            assert!(MASKS.contains(&next.smb_mask));
            s = next;
        }
    }
}
