//! Subnet allocation for application networks (pure).
//!
//! Clocker segments applications by CIDR: every application network gets
//! its own subnet, carved from a pool (`drover serve --subnet-pool
//! 10.213.0.0/16 --subnet-size 24`). The choice is a pure function of the
//! pool and the subnets already in use on the engine (by any network, ours
//! or not), so it is tested exhaustively here and the host actor only lists
//! networks and creates one.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The default pool: a private /16 unlikely to collide with Docker's own
/// defaults (172.17.0.0/16 and up, 192.168.0.0/16 for user networks).
pub const DEFAULT_POOL: &str = "10.213.0.0/16";
/// The default size of one application's subnet: a /24, 254 addresses.
pub const DEFAULT_SIZE: u8 = 24;

/// A subnet or pool that cannot be used; each says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("prefix /{0} is longer than 32 bits")]
    PrefixTooLong(u8),
    #[error("`{0}` is not a CIDR such as 10.213.0.0/16")]
    NotCidr(String),
    #[error("`{addr}` in `{cidr}` is not an IPv4 address")]
    NotIpv4 { addr: String, cidr: String },
    #[error("`/{prefix}` in `{cidr}` is not a prefix length")]
    NotPrefix { prefix: String, cidr: String },
    #[error("--subnet-size /{size} is larger than the pool {pool}; use a prefix of at least /{}", .pool.prefix())]
    LargerThanPool { size: u8, pool: Ipv4Net },
    #[error("--subnet-size /{0} leaves too few addresses; use /29 or shorter (a /24 holds 254)")]
    TooSmall(u8),
}

/// An IPv4 network: address and prefix length, the address masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    base: u32,
    prefix: u8,
}

impl Ipv4Net {
    /// The network containing `addr` with this prefix (host bits cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, SubnetError> {
        if prefix > 32 {
            return Err(SubnetError::PrefixTooLong(prefix));
        }
        Ok(Ipv4Net {
            base: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// The first host address: what Docker uses as the gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + u32::from(self.prefix < 31))
    }

    fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.base
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = SubnetError;
    fn from_str(s: &str) -> Result<Self, SubnetError> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| SubnetError::NotCidr(s.to_string()))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| SubnetError::NotIpv4 {
            addr: addr.to_string(),
            cidr: s.to_string(),
        })?;
        let prefix: u8 = prefix.parse().map_err(|_| SubnetError::NotPrefix {
            prefix: prefix.to_string(),
            cidr: s.to_string(),
        })?;
        Ipv4Net::new(addr, prefix)
    }
}

/// Where application subnets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPool {
    pub pool: Ipv4Net,
    /// Prefix length of each application subnet.
    pub size: u8,
}

impl Default for SubnetPool {
    fn default() -> Self {
        SubnetPool::new(
            DEFAULT_POOL.parse().expect("default pool parses"),
            DEFAULT_SIZE,
        )
        .expect("default pool is valid")
    }
}

impl SubnetPool {
    /// Checks that a subnet of `size` fits in the pool and leaves room for
    /// hosts (Docker needs a gateway and at least one container address).
    pub fn new(pool: Ipv4Net, size: u8) -> Result<Self, SubnetError> {
        if size < pool.prefix() {
            return Err(SubnetError::LargerThanPool { size, pool });
        }
        if size > 29 {
            return Err(SubnetError::TooSmall(size));
        }
        Ok(SubnetPool { pool, size })
    }

    /// How many subnets the pool holds.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.size - self.pool.prefix())
    }

    /// The first subnet of the pool that overlaps none of `used`; `None`
    /// when the pool is exhausted.
    pub fn allocate(&self, used: &[Ipv4Net]) -> Option<Ipv4Net> {
        let step = 1u64 << (32 - u32::from(self.size));
        (0..self.capacity())
            .map(|i| Ipv4Net {
                base: (u64::from(self.pool.base) + i * step) as u32,
                prefix: self.size,
            })
            .find(|candidate| !used.iter().any(|u| u.overlaps(candidate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_masks() {
        assert_eq!(net("10.213.7.9/16").to_string(), "10.213.0.0/16");
        assert_eq!(net("10.0.0.0/24").gateway().to_string(), "10.0.0.1");
        assert_eq!(
            "10.0.0.0".parse::<Ipv4Net>(),
            Err(SubnetError::NotCidr("10.0.0.0".into()))
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Ipv4Net>(),
            Err(SubnetError::PrefixTooLong(33))
        );
        assert_eq!(
            "fd00::/64".parse::<Ipv4Net>().unwrap_err().to_string(),
            "`fd00::` in `fd00::/64` is not an IPv4 address"
        );
        assert!(matches!(
            "10.0.0.0/x".parse::<Ipv4Net>(),
            Err(SubnetError::NotPrefix { .. })
        ));
        assert!(net("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn overlap() {
        assert!(net("10.0.0.0/16").overlaps(&net("10.0.5.0/24")));
        assert!(net("10.0.5.0/24").overlaps(&net("10.0.0.0/16")));
        assert!(!net("10.0.5.0/24").overlaps(&net("10.0.6.0/24")));
        assert!(net("0.0.0.0/0").overlaps(&net("255.255.255.255/32")));
    }

    #[test]
    fn allocates_the_first_free_subnet() {
        let p = SubnetPool::new(net("10.213.0.0/16"), 24).unwrap();
        assert_eq!(p.capacity(), 256);
        assert_eq!(p.allocate(&[]), Some(net("10.213.0.0/24")));
        // Used by anyone, ours or not, and in any size: skipped.
        let used = [
            net("10.213.0.0/24"),
            net("172.17.0.0/16"),
            net("10.213.1.128/25"),
        ];
        assert_eq!(p.allocate(&used), Some(net("10.213.2.0/24")));
        // A network covering the whole pool leaves nothing.
        assert_eq!(p.allocate(&[net("10.0.0.0/8")]), None);
    }

    #[test]
    fn exhausts() {
        let p = SubnetPool::new(net("10.9.0.0/22"), 24).unwrap();
        let mut used = Vec::new();
        while let Some(n) = p.allocate(&used) {
            assert!(used.iter().all(|u: &Ipv4Net| !u.overlaps(&n)));
            used.push(n);
        }
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn pool_rules() {
        assert_eq!(
            SubnetPool::new(net("10.0.0.0/16"), 8)
                .unwrap_err()
                .to_string(),
            "--subnet-size /8 is larger than the pool 10.0.0.0/16; use a prefix of at least /16"
        );
        assert_eq!(
            SubnetPool::new(net("10.0.0.0/16"), 30),
            Err(SubnetError::TooSmall(30))
        );
        assert_eq!(SubnetPool::default().size, 24);
    }
}
