//! The randomuser.me response shape and the flat `User` record that goes to
//! Kafka. `User`'s 12 fields are exactly what jobs/users_created.toml decodes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One randomuser.me API response: `{"results": [...], "info": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiResponse {
    pub results: Vec<ApiUser>,
    #[serde(default)]
    pub info: Option<Info>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Info {
    pub seed: String,
    pub results: u64,
    pub page: u64,
    pub version: String,
}

/// One element of `results`. The fields the mapping needs are required, so a
/// response missing them is rejected as malformed (and retried); the rest are
/// optional because only the generator needs to write them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiUser {
    pub gender: String,
    pub name: Name,
    pub location: Location,
    pub email: String,
    pub login: Login,
    pub dob: DateAge,
    pub registered: DateAge,
    pub phone: String,
    #[serde(default)]
    pub cell: Option<String>,
    #[serde(default)]
    pub id: Option<IdDoc>,
    pub picture: Picture,
    #[serde(default)]
    pub nat: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Name {
    #[serde(default)]
    pub title: Option<String>,
    pub first: String,
    pub last: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Location {
    pub street: Street,
    pub city: String,
    pub state: String,
    pub country: String,
    /// A JSON number for some nationalities (US, DE…), a string for others
    /// (GB "W1 4AB", CA "T3A 2B1"); kept raw and normalised in [`post_code`].
    pub postcode: Value,
    #[serde(default)]
    pub coordinates: Option<Coordinates>,
    #[serde(default)]
    pub timezone: Option<Timezone>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Street {
    /// A number in every response seen so far; accepted as any scalar.
    pub number: Value,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Coordinates {
    pub latitude: String,
    pub longitude: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timezone {
    pub offset: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Login {
    #[serde(default)]
    pub uuid: Option<String>,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DateAge {
    pub date: String,
    #[serde(default)]
    pub age: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdDoc {
    pub name: String,
    /// `null` for some nationalities.
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Picture {
    pub large: String,
    pub medium: String,
    pub thumbnail: String,
}

/// The record produced to Kafka (the original spark_stream.py's fields,
/// with `dob` restored and `post_code` always a string).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    pub address: String,
    pub post_code: String,
    pub email: String,
    pub username: String,
    pub dob: String,
    pub registered_date: String,
    pub phone: String,
    pub picture: String,
}

/// The 12 field names of [`User`], in order.
pub const USER_FIELDS: [&str; 12] = [
    "id",
    "first_name",
    "last_name",
    "gender",
    "address",
    "post_code",
    "email",
    "username",
    "dob",
    "registered_date",
    "phone",
    "picture",
];

/// A JSON scalar as text: strings unquoted, numbers as written, null empty.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `postcode` as a string whatever its JSON type.
pub fn post_code(v: &Value) -> String {
    scalar_text(v)
}

/// "{street.number} {street.name}, {city}, {state}, {country}".
pub fn address(loc: &Location) -> String {
    format!(
        "{} {}, {}, {}, {}",
        scalar_text(&loc.street.number),
        loc.street.name,
        loc.city,
        loc.state,
        loc.country
    )
}

impl User {
    /// Maps an API user; `id` is supplied by the caller (a fresh v4 for API
    /// users, a seeded one for generated users) because every fetch is a new
    /// event even when the API repeats a person (e.g. with `seed=`).
    pub fn from_api(u: &ApiUser, id: Uuid) -> User {
        User {
            id: id.to_string(),
            first_name: u.name.first.clone(),
            last_name: u.name.last.clone(),
            gender: u.gender.clone(),
            address: address(&u.location),
            post_code: post_code(&u.location.postcode),
            email: u.email.clone(),
            username: u.login.username.clone(),
            dob: u.dob.date.clone(),
            registered_date: u.registered.date.clone(),
            phone: u.phone.clone(),
            picture: u.picture.medium.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(postcode: Value) -> ApiUser {
        serde_json::from_value(json!({
            "gender": "female",
            "name": {"title": "Ms", "first": "Zoe", "last": "Lambert"},
            "location": {
                "street": {"number": 6352, "name": "Rue de L'Abbé-Migne"},
                "city": "Aubervilliers", "state": "Haute-Vienne", "country": "France",
                "postcode": postcode,
                "coordinates": {"latitude": "-35.6531", "longitude": "-78.4391"},
                "timezone": {"offset": "+1:00", "description": "Brussels, Copenhagen, Madrid, Paris"}
            },
            "email": "zoe.lambert@example.com",
            "login": {"uuid": "0bd1d1c8-6f27-4d0c-8b58-4b0d3c2b0f0e", "username": "bigswan529",
                      "password": "hunter", "salt": "x", "md5": "m", "sha1": "s", "sha256": "t"},
            "dob": {"date": "1990-04-11T03:47:11.482Z", "age": 35},
            "registered": {"date": "2011-09-02T18:06:34.054Z", "age": 14},
            "phone": "04-59-22-78-45", "cell": "06-51-25-10-51",
            "id": {"name": "INSEE", "value": "2900325706117 53"},
            "picture": {"large": "https://randomuser.me/api/portraits/women/68.jpg",
                        "medium": "https://randomuser.me/api/portraits/med/women/68.jpg",
                        "thumbnail": "https://randomuser.me/api/portraits/thumb/women/68.jpg"},
            "nat": "FR"
        }))
        .expect("sample parses")
    }

    #[test]
    fn post_code_number_becomes_string() {
        let u = User::from_api(&sample(json!(75012)), Uuid::nil());
        assert_eq!(u.post_code, "75012");
    }

    #[test]
    fn post_code_string_is_kept() {
        let u = User::from_api(&sample(json!("W1 4AB")), Uuid::nil());
        assert_eq!(u.post_code, "W1 4AB");
    }

    #[test]
    fn address_format() {
        let u = User::from_api(&sample(json!(1)), Uuid::nil());
        assert_eq!(
            u.address,
            "6352 Rue de L'Abbé-Migne, Aubervilliers, Haute-Vienne, France"
        );
    }

    #[test]
    fn mapping_fields() {
        let id = Uuid::new_v4();
        let u = User::from_api(&sample(json!(1)), id);
        assert_eq!(u.id, id.to_string());
        assert_eq!(u.first_name, "Zoe");
        assert_eq!(u.last_name, "Lambert");
        assert_eq!(u.gender, "female");
        assert_eq!(u.email, "zoe.lambert@example.com");
        assert_eq!(u.username, "bigswan529");
        assert_eq!(u.dob, "1990-04-11T03:47:11.482Z");
        assert_eq!(u.registered_date, "2011-09-02T18:06:34.054Z");
        assert_eq!(u.phone, "04-59-22-78-45");
        assert_eq!(
            u.picture,
            "https://randomuser.me/api/portraits/med/women/68.jpg"
        );
        // Exactly the 12 fields the streaming job decodes, nothing else.
        let v = serde_json::to_value(&u).expect("serialises");
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 12);
        for f in USER_FIELDS {
            assert!(obj.get(f).is_some_and(Value::is_string), "{f}");
        }
    }

    #[test]
    fn missing_required_field_is_rejected() {
        let mut v = serde_json::to_value(sample(json!(1))).expect("serialises");
        v.as_object_mut().expect("object").remove("email");
        assert!(serde_json::from_value::<ApiUser>(v).is_err());
    }
}
