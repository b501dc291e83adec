//! Offline, seeded generator of randomuser.me-shaped users: the same seed
//! gives the same users (and ids) on every run and machine, so demos and
//! tests work without the internet.

use chrono::{DateTime, SecondsFormat};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::record::{
    ApiResponse, ApiUser, Coordinates, DateAge, IdDoc, Info, Location, Login, Name, Picture,
    Street, Timezone, User,
};

/// Ages are computed against this fixed instant (2025-06-01T00:00:00Z), not
/// the clock, so output does not change from one day to the next.
const REFERENCE_MS: i64 = 1_748_736_000_000;
const YEAR_MS: i64 = 31_556_952_000;

struct Nat {
    code: &'static str,
    country: &'static str,
    /// (city, state) pairs.
    places: &'static [(&'static str, &'static str)],
    streets: &'static [&'static str],
    first_m: &'static [&'static str],
    first_f: &'static [&'static str],
    last: &'static [&'static str],
    /// Numeric post codes (as JSON numbers, like the API) or string ones.
    numeric_postcode: bool,
    id_name: &'static str,
    phone: &'static str,
}

const NATS: &[Nat] = &[
    Nat {
        code: "US",
        country: "United States",
        places: &[
            ("Billings", "Montana"),
            ("Fort Collins", "Colorado"),
            ("Tallahassee", "Florida"),
            ("Allentown", "Pennsylvania"),
        ],
        streets: &[
            "Pecan Acres Ln",
            "Hickory Creek Dr",
            "W Pecan St",
            "Railroad St",
        ],
        first_m: &["Brandon", "Clifford", "Eli", "Wyatt", "Dale"],
        first_f: &["Sherry", "Kaylee", "Vanessa", "Gina", "Leah"],
        last: &["Hughes", "Carter", "Reyes", "Fisher", "Stanley"],
        numeric_postcode: true,
        id_name: "SSN",
        phone: "(###) ###-####",
    },
    Nat {
        code: "GB",
        country: "United Kingdom",
        places: &[
            ("Leeds", "West Yorkshire"),
            ("Bath", "Somerset"),
            ("Truro", "Cornwall"),
        ],
        streets: &["Victoria Street", "Church Lane", "Mill Road", "The Avenue"],
        first_m: &["Oliver", "Harry", "Alfie", "Lewis"],
        first_f: &["Amelia", "Isla", "Evie", "Freya"],
        last: &["Walker", "Wright", "Evans", "Pearce"],
        numeric_postcode: false,
        id_name: "NINO",
        phone: "016973 #####",
    },
    Nat {
        code: "DE",
        country: "Germany",
        places: &[("Bielefeld", "Nordrhein-Westfalen"), ("Gera", "Thüringen")],
        streets: &["Lindenstraße", "Schulstraße", "Am Sportplatz"],
        first_m: &["Jörg", "Malte", "Henrik"],
        first_f: &["Bärbel", "Sina", "Mareike"],
        last: &["Schäfer", "Krüger", "Vogel"],
        numeric_postcode: true,
        id_name: "SVNR",
        phone: "0###-#######",
    },
    Nat {
        code: "FR",
        country: "France",
        places: &[
            ("Aubervilliers", "Haute-Vienne"),
            ("Nantes", "Loire-Atlantique"),
        ],
        streets: &[
            "Rue de L'Abbé-Migne",
            "Place du 8 Février 1962",
            "Rue Dumenge",
        ],
        first_m: &["Mathéo", "Lucas", "Noé"],
        first_f: &["Zoé", "Inès", "Léna"],
        last: &["Lambert", "Fournier", "Mercier"],
        numeric_postcode: true,
        id_name: "INSEE",
        phone: "0#-##-##-##-##",
    },
    Nat {
        code: "CA",
        country: "Canada",
        places: &[("Kingston", "Ontario"), ("Delta", "British Columbia")],
        streets: &["Lakeshore Rd", "Dufferin St", "Parliament St"],
        first_m: &["Logan", "Nathan", "Liam"],
        first_f: &["Chloe", "Maya", "Emma"],
        last: &["Roy", "Gagnon", "Martin"],
        numeric_postcode: false,
        id_name: "SIN",
        phone: "B## B##-####",
    },
];

const TIMEZONES: &[(&str, &str)] = &[
    ("-5:00", "Eastern Time (US & Canada), Bogota, Lima"),
    ("+0:00", "Western Europe Time, London, Lisbon, Casablanca"),
    ("+1:00", "Brussels, Copenhagen, Madrid, Paris"),
    ("-7:00", "Mountain Time (US & Canada)"),
    ("+9:00", "Tokyo, Seoul, Osaka, Sapporo, Yakutsk"),
];

const USERNAME_ADJ: &[&str] = &["big", "tiny", "silver", "happy", "lazy", "organic", "blue"];
const USERNAME_NOUN: &[&str] = &["swan", "bear", "tiger", "koala", "frog", "goose", "panda"];

/// Seeded generator. Not thread-safe by design: one per batch.
pub struct Generator {
    rng: StdRng,
    seed: u64,
    produced: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            seed,
            produced: 0,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        // Every list above is non-empty; index directly rather than unwrap.
        *items.choose(&mut self.rng).unwrap_or(&items[0])
    }

    /// `pattern` with `#` a random digit and `B` a digit 2–9. With `keep`
    /// false the digits are drawn (so the stream stays the same) but the
    /// string is not built.
    fn digits(&mut self, pattern: &str, keep: bool) -> String {
        let mut out = String::with_capacity(if keep { pattern.len() } else { 0 });
        for c in pattern.chars() {
            let c = match c {
                '#' => char::from(b'0' + self.rng.random_range(0..10u8)),
                'B' => char::from(b'2' + self.rng.random_range(0..8u8)),
                other => other,
            };
            if keep {
                out.push(c);
            }
        }
        out
    }

    /// `len` random hex digits; see [`Generator::digits`] for `keep`.
    fn hex(&mut self, len: usize, keep: bool) -> String {
        let mut out = String::with_capacity(if keep { len } else { 0 });
        for _ in 0..len {
            let d = self.rng.random_range(0..16u32);
            if keep {
                out.push(char::from_digit(d, 16).unwrap_or('0'));
            }
        }
        out
    }

    fn date_age(&mut self, min_years: i64, max_years: i64) -> DateAge {
        let back = self
            .rng
            .random_range(min_years * YEAR_MS..max_years * YEAR_MS);
        let ms = REFERENCE_MS - back;
        // randomuser.me's form, 2011-09-02T18:06:34.054Z (years 1945–2024
        // here, so RFC 3339 with millis and Z is the same text, and cheaper
        // than a strftime pattern parsed for every date).
        let date = DateTime::from_timestamp_millis(ms)
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default();
        DateAge {
            date,
            age: Some(u32::try_from(back / YEAR_MS).unwrap_or(0)),
        }
    }

    /// A uuid v4 drawn from the seeded stream.
    pub fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    /// The next user in randomuser.me's shape.
    pub fn next_api_user(&mut self) -> ApiUser {
        self.draw_user(true)
    }

    /// The next user. With `full` false, the fields the flat record does not
    /// keep (login hashes, coordinates, time zone, cell, id document, large
    /// and thumbnail pictures) are drawn but left empty: the stream of
    /// random numbers, and so every later user, is the same either way.
    fn draw_user(&mut self, full: bool) -> ApiUser {
        let nat = &NATS[self.rng.random_range(0..NATS.len())];
        let female = self.rng.random_bool(0.5);
        let first = if female {
            self.pick(nat.first_f)
        } else {
            self.pick(nat.first_m)
        };
        let last = self.pick(nat.last);
        let (city, state) = self.pick(nat.places);
        let postcode: Value = if nat.numeric_postcode {
            json!(self.rng.random_range(10_000..99_999u32))
        } else {
            let p = self.digits("B#B #B#", true);
            Value::String(p)
        };
        let (tz_off, tz_desc) = self.pick(TIMEZONES);
        let username = format!(
            "{}{}{}",
            self.pick(USERNAME_ADJ),
            self.pick(USERNAME_NOUN),
            self.rng.random_range(100..1000u32)
        );
        let login_uuid = self.uuid();
        let (title, sex_dir) = if female {
            ("Ms", "women")
        } else {
            ("Mr", "men")
        };
        let portrait = self.rng.random_range(0..100u32);
        let email_domain = "example.com";
        let street_number = self.rng.random_range(1..10_000u32);
        let street_name = self.pick(nat.streets);
        let lat = self.rng.random_range(-90.0..90.0f64);
        let lon = self.rng.random_range(-180.0..180.0f64);
        let password = self.hex(8, full);
        let salt = self.hex(8, full);
        let md5 = self.hex(32, full);
        let sha1 = self.hex(40, full);
        let sha256 = self.hex(64, full);
        let dob = self.date_age(20, 80);
        let registered = self.date_age(1, 22);
        let phone = self.digits(nat.phone, true);
        let cell = self.digits(nat.phone, full);
        let id_value = self.digits("###-##-####", full);
        self.produced += 1;
        ApiUser {
            gender: if female { "female" } else { "male" }.to_string(),
            name: Name {
                title: Some(title.to_string()),
                first: first.to_string(),
                last: last.to_string(),
            },
            location: Location {
                street: Street {
                    number: json!(street_number),
                    name: street_name.to_string(),
                },
                city: city.to_string(),
                state: state.to_string(),
                country: nat.country.to_string(),
                postcode,
                coordinates: full.then(|| Coordinates {
                    latitude: format!("{lat:.4}"),
                    longitude: format!("{lon:.4}"),
                }),
                timezone: full.then(|| Timezone {
                    offset: tz_off.to_string(),
                    description: tz_desc.to_string(),
                }),
            },
            email: format!(
                "{}.{}@{email_domain}",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            login: Login {
                uuid: full.then(|| login_uuid.to_string()),
                username,
                password: full.then_some(password),
                salt: full.then_some(salt),
                md5: full.then_some(md5),
                sha1: full.then_some(sha1),
                sha256: full.then_some(sha256),
            },
            dob,
            registered,
            phone,
            cell: full.then_some(cell),
            id: full.then(|| IdDoc {
                name: nat.id_name.to_string(),
                value: Some(id_value),
            }),
            picture: Picture {
                medium: format!("https://randomuser.me/api/portraits/med/{sex_dir}/{portrait}.jpg"),
                large: if full {
                    format!("https://randomuser.me/api/portraits/{sex_dir}/{portrait}.jpg")
                } else {
                    String::new()
                },
                thumbnail: if full {
                    format!("https://randomuser.me/api/portraits/thumb/{sex_dir}/{portrait}.jpg")
                } else {
                    String::new()
                },
            },
            nat: Some(nat.code.to_string()),
        }
    }

    /// The next user as the flat record, with a seeded id: the same record
    /// as `User::from_api` of [`Generator::next_api_user`], without building
    /// the fields it drops.
    pub fn next_user(&mut self) -> User {
        let api = self.draw_user(false);
        let id = self.uuid();
        User::from_api(&api, id)
    }

    /// `n` users as one randomuser.me-shaped response.
    pub fn response(&mut self, n: usize) -> ApiResponse {
        let results: Vec<ApiUser> = (0..n).map(|_| self.next_api_user()).collect();
        ApiResponse {
            info: Some(Info {
                seed: format!("{:016x}", self.seed),
                results: n as u64,
                page: 1,
                version: "1.4".to_string(),
            }),
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::USER_FIELDS;

    #[test]
    fn same_seed_same_users() {
        let a: Vec<User> = {
            let mut g = Generator::new(42);
            (0..50).map(|_| g.next_user()).collect()
        };
        let b: Vec<User> = {
            let mut g = Generator::new(42);
            (0..50).map(|_| g.next_user()).collect()
        };
        assert_eq!(a, b);
        let c: Vec<User> = {
            let mut g = Generator::new(43);
            (0..50).map(|_| g.next_user()).collect()
        };
        assert_ne!(a, c);
    }

    /// `next_user` skips building what the record drops; the users (and the
    /// random stream behind them) must be exactly those of the full path.
    #[test]
    fn flat_users_are_those_of_the_full_path() {
        for seed in [0, 1, 42, 77, 12_345] {
            let (mut flat, mut full) = (Generator::new(seed), Generator::new(seed));
            for _ in 0..2000 {
                let api = full.next_api_user();
                let id = full.uuid();
                assert_eq!(flat.next_user(), User::from_api(&api, id), "seed {seed}");
            }
        }
    }

    /// The RFC 3339 form used for dates is randomuser.me's
    /// `%Y-%m-%dT%H:%M:%S%.3fZ` over the generator's range of dates.
    #[test]
    fn dates_match_the_api_pattern() {
        let mut ms = REFERENCE_MS - 80 * YEAR_MS;
        while ms <= REFERENCE_MS {
            let d = DateTime::from_timestamp_millis(ms).expect("in range");
            assert_eq!(
                d.to_rfc3339_opts(SecondsFormat::Millis, true),
                d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            ms += 7_919_993_311; // ~92 days and an odd number of millis
        }
    }

    #[test]
    fn ids_are_v4_and_unique() {
        let mut g = Generator::new(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let u = g.next_user();
            let id = Uuid::parse_str(&u.id).expect("uuid");
            assert_eq!(id.get_version_num(), 4);
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn generated_response_has_api_shape() {
        let mut g = Generator::new(1);
        let resp = g.response(20);
        let v = serde_json::to_value(&resp).expect("serialises");
        // Round-trips through the same parser the API source uses.
        let back: ApiResponse = serde_json::from_value(v.clone()).expect("parses");
        assert_eq!(back.results.len(), 20);
        let u = &v["results"][0];
        for path in [
            "/gender",
            "/name/title",
            "/name/first",
            "/location/street/number",
            "/location/street/name",
            "/location/postcode",
            "/location/coordinates/latitude",
            "/location/timezone/offset",
            "/email",
            "/login/uuid",
            "/login/username",
            "/dob/date",
            "/dob/age",
            "/registered/date",
            "/phone",
            "/cell",
            "/id/name",
            "/picture/medium",
            "/nat",
        ] {
            assert!(u.pointer(path).is_some(), "missing {path}");
        }
        // Both post code kinds occur, like the real API.
        let kinds: std::collections::HashSet<bool> = back
            .results
            .iter()
            .map(|u| u.location.postcode.is_number())
            .collect();
        assert_eq!(kinds.len(), 2, "expected numeric and string post codes");
    }

    #[test]
    fn users_have_all_fields_non_empty() {
        let mut g = Generator::new(99);
        for _ in 0..100 {
            let v = serde_json::to_value(g.next_user()).expect("serialises");
            for f in USER_FIELDS {
                assert!(
                    v[f].as_str().is_some_and(|s| !s.is_empty()),
                    "{f} empty in {v}"
                );
            }
        }
    }

    #[test]
    fn dates_are_iso_millis() {
        let mut g = Generator::new(3);
        let u = g.next_user();
        assert!(
            chrono::DateTime::parse_from_rfc3339(&u.dob).is_ok(),
            "{}",
            u.dob
        );
        assert_eq!(u.dob.len(), "1990-04-11T03:47:11.482Z".len());
    }
}
