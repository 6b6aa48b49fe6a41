//! The EFI System Partition: its files (systemd-boot, its configuration, the two boot slots and
//! their entries) and the FAT32 file system that holds them, written in memory with `fatfs`.
//!
//! Layout (documented with the whole disk in `docs/disk-layout.md`):
//! ```text
//! EFI/BOOT/BOOTX64.EFI             systemd-boot (the removable-media loader path)
//! loader/loader.conf               no menu, no editor, no automatic entries
//! loader/entries/tank-a+3.conf     slot A's entry, three tries (boot counting)
//! loader/entries/tank-b+3.conf     slot B's entry
//! tank/a/vmlinuz  tank/a/initramfs.img
//! tank/b/vmlinuz  tank/b/initramfs.img
//! ```
//! systemd-boot sorts entries with the same `sort-key` by `version`, newest first, and puts
//! entries with no tries left at the end; the newest good slot therefore boots, and a slot
//! whose tries run out gives way to the other one.
//!
//! Every timestamp is the FAT epoch (1980-01-01 00:00) and the volume serial comes from the
//! caller, so the same files give the same bytes.
//!
//! What does not live here: the partition table around it ([`crate::disk`]).

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

/// Size of the ESP: two slots of today's ~16-19 MiB each, with room for each to triple.
pub const ESP_SIZE: u64 = 128 << 20;
/// FAT32 needs at least 65525 clusters: 128 MiB in 1 KiB clusters gives about 130,000.
pub const CLUSTER_SIZE: u32 = 1024;
/// The volume label (11 bytes, space-padded).
pub const LABEL: [u8; 11] = *b"TANK-ESP   ";
/// Boot attempts a new slot gets before systemd-boot gives up on it.
pub const TRIES: u32 = 3;
/// The loader's path on the ESP.
pub const LOADER_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// The entries' folder.
pub const ENTRIES_DIR: &str = "loader/entries";

/// `loader/loader.conf`: boot the first entry at once (holding a key shows the menu), no
/// command-line editor, no entries for other loaders or the firmware setup.
pub const LOADER_CONF: &str =
    "timeout 0\neditor no\nauto-entries no\nauto-firmware no\ndefault tank-*\n";

/// One of the two boot slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// `a` or `b`: the slot's folder and the letter in its entry's name.
    pub fn id(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// `tank/a`.
    pub fn dir(self) -> String {
        format!("tank/{}", self.id())
    }

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// A slot's boot entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub slot: Slot,
    /// Orders the slots: systemd-boot prefers the higher one. An upgrade gives the slot it
    /// writes the next number.
    pub generation: u32,
    /// The Tank version the slot holds.
    pub tank_version: String,
    /// The kernel command line.
    pub options: String,
    /// `Some(n)`: boot counting with n tries left; `None`: marked good.
    pub tries_left: Option<u32>,
    pub tries_done: u32,
}

impl Entry {
    /// The file name: `tank-a+3.conf`, `tank-a+2-1.conf`, or `tank-a.conf` once good.
    pub fn file_name(&self) -> String {
        match (self.tries_left, self.tries_done) {
            (None, _) => format!("tank-{}.conf", self.slot.id()),
            (Some(left), 0) => format!("tank-{}+{left}.conf", self.slot.id()),
            (Some(left), done) => format!("tank-{}+{left}-{done}.conf", self.slot.id()),
        }
    }

    /// The entry file's text (Boot Loader Specification type #1).
    pub fn text(&self) -> String {
        let dir = self.slot.dir();
        format!(
            "title      Tank {} (slot {})\nsort-key   tank\nversion    {}\nlinux      /{dir}/vmlinuz\ninitrd     /{dir}/initramfs.img\noptions    {}\n",
            self.tank_version,
            self.slot.id().to_ascii_uppercase(),
            self.generation,
            self.options
        )
    }
}

/// The kernel command line of `slot`: the board's, plus `tank.slot=`.
pub fn slot_cmdline(cmdline: &str, slot: Slot) -> String {
    format!("{} tank.slot={}", cmdline.trim(), slot.id())
}

/// The ESP's files, path → bytes, for a new image: both slots hold this build; slot A is the
/// newer (it boots first) and both count their boots until they are marked good.
pub fn contents(
    loader: &[u8],
    vmlinuz: &[u8],
    initramfs: &[u8],
    cmdline: &str,
    tank_version: &str,
) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(LOADER_PATH.to_owned(), loader.to_vec());
    files.insert(
        "loader/loader.conf".to_owned(),
        LOADER_CONF.as_bytes().to_vec(),
    );
    for slot in Slot::ALL {
        let entry = Entry {
            slot,
            generation: if slot == Slot::A { 2 } else { 1 },
            tank_version: tank_version.to_owned(),
            options: slot_cmdline(cmdline, slot),
            tries_left: Some(TRIES),
            tries_done: 0,
        };
        files.insert(
            format!("{ENTRIES_DIR}/{}", entry.file_name()),
            entry.text().into_bytes(),
        );
        files.insert(format!("{}/vmlinuz", slot.dir()), vmlinuz.to_vec());
        files.insert(format!("{}/initramfs.img", slot.dir()), initramfs.to_vec());
    }
    files
}

/// Always the FAT epoch, so file times never depend on the clock.
#[derive(Debug)]
struct FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 1980,
            month: 1,
            day: 1,
        }
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static FIXED_TIME: FixedTime = FixedTime;

/// Options for opening an ESP so that any change keeps the fixed timestamps.
pub fn fs_options() -> fatfs::FsOptions {
    fatfs::FsOptions::new().time_provider(&FIXED_TIME)
}

/// A FAT32 file system of [`ESP_SIZE`] bytes holding `files`, folders created as needed.
pub fn format(files: &BTreeMap<String, Vec<u8>>, volume_id: u32) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; ESP_SIZE as usize];
    fatfs::format_volume(
        Cursor::new(&mut bytes[..]),
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_sector(512)
            .bytes_per_cluster(CLUSTER_SIZE)
            .total_sectors((ESP_SIZE / 512) as u32)
            .volume_id(volume_id)
            .volume_label(LABEL),
    )?;
    let fs = fatfs::FileSystem::new(Cursor::new(&mut bytes[..]), fs_options())?;
    {
        let root = fs.root_dir();
        for (path, data) in files {
            write_file(&root, path, data)?;
        }
    }
    fs.unmount()?;
    Ok(bytes)
}

/// Writes `data` to `path` under `root`, creating its folders; replaces an existing file.
pub fn write_file<T: fatfs::ReadWriteSeek>(
    root: &fatfs::Dir<T>,
    path: &str,
    data: &[u8],
) -> io::Result<()> {
    let mut dir = root.clone();
    let mut parts: Vec<&str> = path.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    for part in parts {
        dir = match dir.open_dir(part) {
            Ok(d) => d,
            Err(_) => dir.create_dir(part)?,
        };
    }
    let mut file = dir.create_file(name)?;
    file.truncate()?;
    file.write_all(data)?;
    file.flush()
}

/// Reads the whole file at `path`.
pub fn read_file<T: fatfs::ReadWriteSeek>(root: &fatfs::Dir<T>, path: &str) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    root.open_file(path)?.read_to_end(&mut data)?;
    Ok(data)
}

/// The names in `loader/entries`, sorted.
pub fn entry_names<T: fatfs::ReadWriteSeek>(root: &fatfs::Dir<T>) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = root
        .open_dir(ENTRIES_DIR)?
        .iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.is_file())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    Ok(names)
}

/// A window of `len` bytes at `offset` in `inner`, so `fatfs` can open a partition inside a
/// disk image. Hand-written: it is a few lines, and the crates that offer it pull in more.
#[derive(Debug)]
pub struct Window<T> {
    inner: T,
    offset: u64,
    len: u64,
    pos: u64,
}

impl<T: Seek> Window<T> {
    pub fn new(inner: T, offset: u64, len: u64) -> Self {
        Self {
            inner,
            offset,
            len,
            pos: 0,
        }
    }

    fn clamp(&self, want: usize) -> usize {
        (self.len.saturating_sub(self.pos)).min(want as u64) as usize
    }
}

impl<T: Read + Seek> Read for Window<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.clamp(buf.len());
        self.inner.seek(SeekFrom::Start(self.offset + self.pos))?;
        let got = self.inner.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<T: Write + Seek> Write for Window<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.clamp(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the partition's end",
            ));
        }
        self.inner.seek(SeekFrom::Start(self.offset + self.pos))?;
        let put = self.inner.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Seek> Seek for Window<T> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
        };
        if new < 0 || new > self.len as i128 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_and_text() {
        let mut e = Entry {
            slot: Slot::B,
            generation: 7,
            tank_version: "0.1.0".into(),
            options: slot_cmdline("console=ttyS0 tank.board=x\n", Slot::B),
            tries_left: Some(3),
            tries_done: 0,
        };
        assert_eq!(e.file_name(), "tank-b+3.conf");
        e.tries_left = Some(0);
        e.tries_done = 3;
        assert_eq!(e.file_name(), "tank-b+0-3.conf");
        e.tries_left = None;
        assert_eq!(e.file_name(), "tank-b.conf");
        assert_eq!(
            e.text(),
            "title      Tank 0.1.0 (slot B)\n\
             sort-key   tank\n\
             version    7\n\
             linux      /tank/b/vmlinuz\n\
             initrd     /tank/b/initramfs.img\n\
             options    console=ttyS0 tank.board=x tank.slot=b\n"
        );
    }

    #[test]
    fn fat32_holds_the_files_with_fixed_times() {
        let files = contents(b"MZloader", b"kernel", b"initrd", "console=ttyS0", "0.1.0");
        let a = format(&files, 0x1234_5678).unwrap();
        let b = format(&files, 0x1234_5678).unwrap();
        assert!(a == b, "two formats of the same files differ");
        assert_eq!(a.len() as u64, ESP_SIZE);
        // The boot sector says FAT32, with our serial and label.
        assert_eq!(&a[82..90], b"FAT32   ");
        assert_eq!(&a[67..71], &0x1234_5678u32.to_le_bytes());
        assert_eq!(&a[71..82], &LABEL);
        let mut bytes = a;
        let fs = fatfs::FileSystem::new(Cursor::new(&mut bytes[..]), fs_options()).unwrap();
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
        let root = fs.root_dir();
        for (path, data) in &files {
            assert_eq!(&read_file(&root, path).unwrap(), data, "{path}");
        }
        assert_eq!(
            entry_names(&root).unwrap(),
            vec!["tank-a+3.conf".to_string(), "tank-b+3.conf".to_string()]
        );
        let text =
            String::from_utf8(read_file(&root, "loader/entries/tank-a+3.conf").unwrap()).unwrap();
        assert!(text.contains("version    2\n"), "{text}");
        assert!(
            text.contains("options    console=ttyS0 tank.slot=a\n"),
            "{text}"
        );
        let entry = root
            .open_dir("tank/a")
            .unwrap()
            .iter()
            .map(|e| e.unwrap())
            .find(|e| e.file_name() == "vmlinuz")
            .unwrap();
        let m = entry.modified();
        assert_eq!((m.date.year, m.date.month, m.date.day), (1980, 1, 1));
        assert_eq!((m.time.hour, m.time.min, m.time.sec), (0, 0, 0));
    }

    #[test]
    fn window_bounds() {
        let mut w = Window::new(Cursor::new(vec![0u8; 100]), 10, 20);
        w.write_all(&[1; 20]).unwrap();
        assert!(w.write(&[1]).is_err());
        assert!(w.seek(SeekFrom::Start(21)).is_err());
        w.seek(SeekFrom::Start(0)).unwrap();
        let mut buf = [0u8; 30];
        assert_eq!(w.read(&mut buf).unwrap(), 20);
        let inner = w.inner.into_inner();
        assert_eq!(&inner[..10], &[0; 10]);
        assert_eq!(&inner[10..30], &[1; 20]);
        assert_eq!(&inner[30..], &[0; 70]);
    }
}
