//! Service names for TCP ports, as nmap prints them without `-sV`: a table
//! lookup (`method="table"`), not a guess from what answered.
//!
//! The table comes from, in order:
//! 1. the file named by `TRIDENT_SERVICES`, when set (any file in
//!    `/etc/services` syntax);
//! 2. nmap's own `/usr/share/nmap/nmap-services`, when nmap is installed:
//!    the same syntax plus a frequency column, and the names nmap prints
//!    (8000 is `http-alt` there, absent from Debian's `/etc/services`), so
//!    the two tools' reports of one host agree;
//! 3. `/etc/services`;
//! 4. a built-in table of about a hundred common TCP services, when none
//!    can be read.
//!
//! Only one source is used (they are not merged), so a name always comes
//! from one place. The file is read and parsed once, on the first lookup.

use std::sync::OnceLock;

/// Environment variable naming a services file to use instead of `/etc/services`.
pub const SERVICES_ENV: &str = "TRIDENT_SERVICES";

/// nmap's services table, where Debian's nmap package installs it.
pub const NMAP_SERVICES: &str = "/usr/share/nmap/nmap-services";

/// The system services database.
const ETC_SERVICES: &str = "/etc/services";

/// Most bytes a services file may hold (nmap's has about 1 MB): a device
/// or endless pipe named by mistake (`TRIDENT_SERVICES=/dev/zero`) is
/// refused instead of filling memory.
const MAX_FILE_BYTES: u64 = 8 << 20;

/// Port → name, for TCP: names back to back in one string and a sorted
/// index into it, so that nmap's 8,000-name table costs ~170 KiB, not the
/// ~600 KiB of a map of boxed names, and loading streams the 1 MB file
/// line by line rather than holding it whole.
#[derive(Debug, Default)]
pub struct Services {
    /// Every name, back to back.
    arena: String,
    /// `(port, start, end)` of each name in `arena`, by port, one per port.
    index: Vec<(u16, u32, u32)>,
}

impl Services {
    /// Parses `/etc/services` syntax: `name port/proto [aliases...] [# comment]`.
    /// Only `tcp` entries count; the first entry for a port wins; malformed
    /// lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut table = Services::default();
        text.lines().for_each(|line| table.add_line(line));
        table.sealed()
    }

    /// As [`Services::parse`], reading `input` a line at a time; a line
    /// that is not UTF-8 is skipped. An input of more than
    /// [`MAX_FILE_BYTES`] is an error.
    pub fn read(input: impl std::io::BufRead) -> std::io::Result<Self> {
        Self::read_at_most(input, MAX_FILE_BYTES)
    }

    /// [`Services::read`] with at most `limit` bytes, found out after
    /// reading `limit + 1` at most: neither a line nor the table grows
    /// past that, whatever the input.
    fn read_at_most(input: impl std::io::BufRead, limit: u64) -> std::io::Result<Self> {
        use std::io::BufRead as _;
        let mut input = input.take(limit.saturating_add(1));
        let mut table = Services::default();
        let mut line = Vec::with_capacity(256);
        while input.read_until(b'\n', &mut line)? > 0 {
            if let Ok(text) = std::str::from_utf8(&line) {
                table.add_line(text);
            }
            line.clear();
        }
        if input.limit() == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("more than {limit} bytes, the most a services file may hold"),
            ));
        }
        Ok(table.sealed())
    }

    /// Adds the entry on one line of a services file, if it is a TCP one.
    fn add_line(&mut self, line: &str) {
        // Only the first two fields matter: no need to find where a
        // comment starts (nmap-services has one on most of its 27,000 lines).
        let mut fields = line.split_ascii_whitespace();
        let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else { return };
        let port_proto = port_proto.split('#').next().unwrap_or_default();
        if name.starts_with('#') || name.contains('#') {
            return;
        }
        let Some((port, proto)) = port_proto.split_once('/') else { return };
        if !proto.eq_ignore_ascii_case("tcp") {
            return;
        }
        if let Ok(port) = port.parse::<u16>() {
            self.push(port, name);
        }
    }

    /// Adds `name` for `port` (the index is sorted by [`Services::sealed`]).
    fn push(&mut self, port: u16, name: &str) {
        let Ok(start) = u32::try_from(self.arena.len()) else { return };
        self.arena.push_str(name);
        let end = u32::try_from(self.arena.len()).unwrap_or(start);
        self.index.push((port, start, end));
    }

    /// Sorts the index by port, keeping the first entry of each.
    fn sealed(mut self) -> Self {
        // A stable sort keeps the file's order among a port's entries.
        self.index.sort_by_key(|&(port, _, _)| port);
        self.index.dedup_by_key(|&mut (port, _, _)| port);
        self.arena.shrink_to_fit();
        self.index.shrink_to_fit();
        self
    }

    /// Every (port, name), by port.
    fn entries(&self) -> impl Iterator<Item = (u16, &str)> {
        self.index.iter().map(|&(port, start, end)| (port, self.arena.get(start as usize..end as usize).unwrap_or("")))
    }

    /// The built-in table.
    pub fn builtin() -> Self {
        let mut table = Services::default();
        for &(port, name) in BUILTIN {
            table.push(port, name);
        }
        table.sealed()
    }

    /// The name of TCP `port`, if the table has one.
    pub fn get(&self, port: u16) -> Option<&str> {
        let i = self.index.binary_search_by_key(&port, |&(p, _, _)| p).ok()?;
        let (_, start, end) = self.index[i];
        self.arena.get(start as usize..end as usize)
    }

    /// The TCP ports named `pattern`, ascending: a name, or a pattern
    /// where `*` stands for any run of characters and `?` for one (as
    /// nmap's `-p 'http*'`), compared without regard to case.
    pub fn ports_named(&self, pattern: &str) -> Vec<u16> {
        let pattern = pattern.to_ascii_lowercase();
        let mut ports: Vec<u16> = self
            .entries()
            .filter(|(_, name)| crate::glob::matches(pattern.as_bytes(), name.to_ascii_lowercase().as_bytes()))
            .map(|(port, _)| port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// Number of ports with a name.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Loads the table as described in the module documentation.
    fn load() -> Self {
        if let Some(path) = std::env::var_os(SERVICES_ENV).filter(|p| !p.is_empty()) {
            match Self::read_file(std::path::Path::new(&path)) {
                Ok(table) => return table,
                Err(e) => eprintln!(
                    "trident: cannot read {SERVICES_ENV}={}: {e}; using the default table",
                    std::path::Path::new(&path).display()
                ),
            }
        }
        [NMAP_SERVICES, ETC_SERVICES]
            .into_iter()
            .filter_map(|path| Self::read_file(std::path::Path::new(path)).ok())
            .find(|table| !table.is_empty())
            .unwrap_or_else(Self::builtin)
    }

    fn read_file(path: &std::path::Path) -> std::io::Result<Self> {
        Self::read(std::io::BufReader::new(std::fs::File::open(path)?))
    }
}

/// The process-wide table, loaded on first use.
pub fn table() -> &'static Services {
    static TABLE: OnceLock<Services> = OnceLock::new();
    TABLE.get_or_init(Services::load)
}

/// The service name of TCP `port` (`22` → `ssh`), if known.
pub fn service_name(port: u16) -> Option<&'static str> {
    table().get(port)
}

/// The TCP ports of a service name or pattern in the process's table (see
/// [`Services::ports_named`]).
pub fn ports_named(pattern: &str) -> Vec<u16> {
    table().ports_named(pattern)
}

/// Common TCP services, for systems without `/etc/services`. Names follow
/// the IANA registry where one exists, else the name in everyday use.
const BUILTIN: &[(u16, &str)] = &[
    (7, "echo"),
    (9, "discard"),
    (13, "daytime"),
    (19, "chargen"),
    (20, "ftp-data"),
    (21, "ftp"),
    (22, "ssh"),
    (23, "telnet"),
    (25, "smtp"),
    (37, "time"),
    (43, "whois"),
    (49, "tacacs"),
    (53, "domain"),
    (70, "gopher"),
    (79, "finger"),
    (80, "http"),
    (88, "kerberos"),
    (102, "iso-tsap"),
    (110, "pop3"),
    (111, "sunrpc"),
    (113, "ident"),
    (119, "nntp"),
    (123, "ntp"),
    (135, "msrpc"),
    (139, "netbios-ssn"),
    (143, "imap"),
    (161, "snmp"),
    (179, "bgp"),
    (194, "irc"),
    (199, "smux"),
    (389, "ldap"),
    (427, "svrloc"),
    (443, "https"),
    (444, "snpp"),
    (445, "microsoft-ds"),
    (464, "kpasswd"),
    (465, "submissions"),
    (513, "login"),
    (514, "shell"),
    (515, "printer"),
    (543, "klogin"),
    (544, "kshell"),
    (548, "afp"),
    (554, "rtsp"),
    (587, "submission"),
    (631, "ipp"),
    (636, "ldaps"),
    (646, "ldp"),
    (873, "rsync"),
    (989, "ftps-data"),
    (990, "ftps"),
    (992, "telnets"),
    (993, "imaps"),
    (995, "pop3s"),
    (1080, "socks"),
    (1099, "rmiregistry"),
    (1194, "openvpn"),
    (1433, "ms-sql-s"),
    (1434, "ms-sql-m"),
    (1521, "oracle"),
    (1723, "pptp"),
    (1883, "mqtt"),
    (2049, "nfs"),
    (2181, "zookeeper"),
    (2375, "docker"),
    (2376, "docker-s"),
    (2379, "etcd-client"),
    (2380, "etcd-server"),
    (3128, "squid-http"),
    (3260, "iscsi"),
    (3268, "globalcatLDAP"),
    (3269, "globalcatLDAPssl"),
    (3306, "mysql"),
    (3389, "ms-wbt-server"),
    (3478, "stun"),
    (3690, "svn"),
    (4369, "epmd"),
    (5060, "sip"),
    (5061, "sips"),
    (5222, "xmpp-client"),
    (5269, "xmpp-server"),
    (5432, "postgresql"),
    (5672, "amqp"),
    (5900, "vnc"),
    (5984, "couchdb"),
    (5985, "wsman"),
    (5986, "wsmans"),
    (6000, "x11"),
    (6379, "redis"),
    (6514, "syslog-tls"),
    (6667, "irc"),
    (8000, "http-alt"),
    (8008, "http"),
    (8009, "ajp13"),
    (8080, "http-alt"),
    (8443, "https-alt"),
    (8883, "secure-mqtt"),
    (9092, "kafka"),
    (9100, "jetdirect"),
    (9200, "elasticsearch"),
    (9418, "git"),
    (10000, "webmin"),
    (11211, "memcache"),
    (25565, "minecraft"),
    (27017, "mongodb"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_services_syntax() {
        let text = "\
# comment line
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
echo\t\t7/tcp
echo\t\t7/udp
fsp\t\t21/udp\t\tfspd
ftp\t\t21/tcp
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
alt-ssh\t\t22/tcp
http 80/TCP www
bad-port 99999/tcp
no-proto 81
   
unknown\t50529/tcp\t0.000076
";
        let s = Services::parse(text);
        assert_eq!(s.get(1), Some("tcpmux"));
        assert_eq!(s.get(7), Some("echo"));
        assert_eq!(s.get(21), Some("ftp"), "udp entries are ignored");
        assert_eq!(s.get(22), Some("ssh"), "the first entry wins");
        assert_eq!(s.get(80), Some("http"));
        assert_eq!(s.get(81), None);
        assert_eq!(s.get(50529), Some("unknown"), "nmap-services lines parse too");
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn reading_streams_lines_and_skips_what_is_not_utf8() {
        let bytes = b"ssh 22/tcp\nbad\xff 23/tcp\nhttp-alt\t8000/tcp\t0.009710\t# A common alternative\nhttp 80/tcp";
        let s = Services::read(&bytes[..]).unwrap();
        assert_eq!((s.get(22), s.get(23), s.get(80), s.get(8000)), (Some("ssh"), None, Some("http"), Some("http-alt")));
        assert_eq!(s.entries().map(|(p, _)| p).collect::<Vec<_>>(), [22, 80, 8000], "by port");
        let exact = Services::read_at_most(&bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(exact.len(), 3);
        let err = Services::read_at_most(&bytes[..], bytes.len() as u64 - 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge, "{err}");
        // An endless input, even one long line, is cut at the limit.
        let endless = std::io::BufReader::new(std::io::repeat(b'x'));
        assert!(Services::read_at_most(endless, 1 << 16).unwrap_err().to_string().contains("more than 65536 bytes"));
    }

    #[test]
    fn builtin_table_is_sorted_distinct_and_has_the_classics() {
        assert!(BUILTIN.windows(2).all(|w| w[0].0 < w[1].0), "sorted by port, no duplicates");
        assert!(BUILTIN.len() >= 100, "{}", BUILTIN.len());
        assert!(BUILTIN.iter().all(|(_, n)| !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c == '/')));
        let b = Services::builtin();
        let want = [
            (21, "ftp"),
            (22, "ssh"),
            (23, "telnet"),
            (25, "smtp"),
            (53, "domain"),
            (80, "http"),
            (110, "pop3"),
            (143, "imap"),
            (443, "https"),
            (3306, "mysql"),
            (5432, "postgresql"),
            (6379, "redis"),
            (8000, "http-alt"),
            (8080, "http-alt"),
        ];
        for (port, name) in want {
            assert_eq!(b.get(port), Some(name), "port {port}");
        }
        assert_eq!(b.get(1), None);
    }

    #[test]
    fn names_and_patterns_give_their_ports() {
        let s =
            Services::parse("http 80/tcp\nhttp 8008/tcp\nhttps 443/tcp\nhttp-alt 8080/tcp\nssh 22/tcp\nsmtp 25/udp\n");
        assert_eq!(s.ports_named("http"), vec![80, 8008]);
        assert_eq!(s.ports_named("HTTP"), vec![80, 8008], "case does not matter");
        assert_eq!(s.ports_named("http*"), vec![80, 443, 8008, 8080]);
        assert_eq!(s.ports_named("http?"), vec![443]);
        assert_eq!(s.ports_named("*s*"), vec![22, 443]);
        assert_eq!(s.ports_named("smtp"), Vec::<u16>::new(), "UDP only");
        assert_eq!(s.ports_named("htt"), Vec::<u16>::new());
        for (pattern, text, want) in
            [("a*b*c", "axxbyyc", true), ("a*b", "ab", true), ("*", "", true), ("a?", "a", false)]
        {
            assert_eq!(crate::glob::matches(pattern.as_bytes(), text.as_bytes()), want, "{pattern} {text}");
        }
    }

    #[test]
    fn process_table_knows_ssh() {
        // /etc/services, an override or the built-in table: all name 22 ssh.
        assert_eq!(service_name(22), Some("ssh"));
    }
}
