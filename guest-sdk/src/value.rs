//! serde between Rust types and [`Value`] (the MessagePack value of ENCODING.md).
//!
//! `rmpv::ext::to_value` writes structs as arrays; the contract wants maps (a record is
//! `{key, value, ...}`), so this module has its own serializer and deserializer:
//! structs <-> maps keyed by field name, `()`/`None`/unit structs <-> nil, bytes (via
//! `serde_bytes`) <-> bin, enums externally tagged (a unit variant is its name as a str,
//! other variants a one-entry map `{name: content}`). A `Value` converts to and from a
//! `Value` without copying.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::fmt;

use rmpv::{Integer, Utf8String, Value};
use serde::de::value::{BorrowedBytesDeserializer, BorrowedStrDeserializer, I8Deserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

use crate::error::Error;

/// A serde error of the Value bridge.
#[derive(Debug)]
pub(crate) struct ValueError(String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

impl ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

impl de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

/// Serializes any serde value as a [`Value`] (structs become maps keyed by field name).
///
/// ```
/// use gears::{to_value, Value};
///
/// #[derive(serde::Serialize)]
/// struct Movie { title: String, year: i64 }
///
/// let v = to_value(&Movie { title: "Snatch".into(), year: 2000 }).unwrap();
/// assert_eq!(v, Value::Map(vec![
///     (Value::from("title"), Value::from("Snatch")),
///     (Value::from("year"), Value::from(2000)),
/// ]));
/// assert_eq!(to_value(&(1, "a")).unwrap(), Value::Array(vec![Value::from(1), Value::from("a")]));
/// assert_eq!(to_value(&None::<i64>).unwrap(), Value::Nil);
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> crate::Result<Value> {
    value
        .serialize(ValueSerializer)
        .map_err(|e| Error::msg(format!("cannot encode the value: {e}")))
}

/// Deserializes a [`Value`] into any serde type (maps fill structs by field name).
///
/// ```
/// use gears::{from_value, Value};
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Pair { a: i64, b: Option<String> }
///
/// let v = Value::Map(vec![(Value::from("a"), Value::from(1)), (Value::from("b"), Value::Nil)]);
/// assert_eq!(from_value::<Pair>(&v).unwrap(), Pair { a: 1, b: None });
/// assert!(from_value::<String>(&Value::from(1)).is_err());
/// ```
pub fn from_value<T: DeserializeOwned>(value: &Value) -> crate::Result<T> {
    T::deserialize(ValueDeserializer(value)).map_err(Error::from)
}

/// `to_value` that moves a `Value` through untouched.
pub(crate) fn into_value<T: Serialize + 'static>(value: T) -> crate::Result<Value> {
    let value = match crate::shortcut::give(value) {
        Ok(v) => return Ok(v),
        Err(value) => value,
    };
    let mut slot = Some(value);
    if let Some(v) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Value>>() {
        return Ok(v.take().expect("the slot is full"));
    }
    to_value(slot.as_ref().expect("the slot is full"))
}

/// Decodes what a step receives; `what` names it in the error ("record", "key"...).
/// A `Value` is taken as is (moved when owned).
pub(crate) fn decode<T: DeserializeOwned + 'static>(
    value: Cow<'_, Value>,
    what: &str,
) -> crate::Result<T> {
    if TypeId::of::<T>() == TypeId::of::<Value>() {
        let mut slot = Some(value.into_owned());
        let t = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<T>>()
            .expect("T is Value")
            .take()
            .expect("the slot is full");
        return Ok(t);
    }
    let value = match value {
        Cow::Owned(v) => match crate::shortcut::take::<T>(v) {
            Ok(t) => return Ok(t),
            Err(v) => Cow::Owned(v),
        },
        borrowed => borrowed,
    };
    T::deserialize(ValueDeserializer(&value)).map_err(|e| {
        Error::msg(format!(
            "cannot decode the {what} as {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

// ---------------------------------------------------------------------------------------
// Serializer

struct ValueSerializer;

fn int_value<N: Into<Integer>>(n: N) -> Value {
    Value::Integer(n.into())
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqSerializer;
    type SerializeTuple = SeqSerializer;
    type SerializeTupleStruct = SeqSerializer;
    type SerializeTupleVariant = VariantSerializer<SeqSerializer>;
    type SerializeMap = MapSerializer;
    type SerializeStruct = StructSerializer;
    type SerializeStructVariant = VariantSerializer<StructSerializer>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Boolean(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        if let Ok(n) = i64::try_from(v) {
            Ok(int_value(n))
        } else if let Ok(n) = u64::try_from(v) {
            Ok(int_value(n))
        } else {
            Err(ValueError(format!("integer {v} does not fit in 64 bits")))
        }
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(int_value(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        u64::try_from(v)
            .map(int_value)
            .map_err(|_| ValueError(format!("integer {v} does not fit in 64 bits")))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::F64(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::String(v.to_string().into()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::String(v.into()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Binary(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Nil)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        let inner = value.serialize(self)?;
        if name == rmpv::MSGPACK_EXT_STRUCT_NAME {
            // rmpv's Value::Ext serializes as this newtype around (i8, bytes).
            if let Value::Array(parts) = &inner {
                if let [Value::Integer(tag), Value::Binary(data)] = parts.as_slice() {
                    if let Some(tag) = tag.as_i64().and_then(|t| i8::try_from(t).ok()) {
                        return Ok(Value::Ext(tag, data.clone()));
                    }
                }
            }
            return Err(ValueError("malformed MessagePack ext value".into()));
        }
        Ok(inner)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        Ok(Value::Map(vec![(
            Value::from(variant),
            value.serialize(ValueSerializer)?,
        )]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSerializer, ValueError> {
        Ok(SeqSerializer(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer, ValueError> {
        Ok(SeqSerializer(Vec::with_capacity(len)))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqSerializer, ValueError> {
        Ok(SeqSerializer(Vec::with_capacity(len)))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        Ok(VariantSerializer {
            variant,
            inner: SeqSerializer(Vec::with_capacity(len)),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapSerializer, ValueError> {
        Ok(MapSerializer {
            pairs: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<StructSerializer, ValueError> {
        Ok(StructSerializer(Vec::with_capacity(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        Ok(VariantSerializer {
            variant,
            inner: StructSerializer(Vec::with_capacity(len)),
        })
    }
}

struct SeqSerializer(Vec<Value>);

impl ser::SerializeSeq for SeqSerializer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.0.push(value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for SeqSerializer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqSerializer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

struct MapSerializer {
    pairs: Vec<(Value, Value)>,
    key: Option<Value>,
}

impl ser::SerializeMap for MapSerializer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ValueError("map value without a key".into()))?;
        self.pairs.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(self.pairs))
    }
}

struct StructSerializer(Vec<(Value, Value)>);

impl ser::SerializeStruct for StructSerializer {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.0
            .push((Value::from(key), value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(self.0))
    }
}

struct VariantSerializer<S> {
    variant: &'static str,
    inner: S,
}

impl ser::SerializeTupleVariant for VariantSerializer<SeqSerializer> {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(&mut self.inner, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(vec![(
            Value::from(self.variant),
            Value::Array(self.inner.0),
        )]))
    }
}

impl ser::SerializeStructVariant for VariantSerializer<StructSerializer> {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Map(vec![(
            Value::from(self.variant),
            Value::Map(self.inner.0),
        )]))
    }
}

// ---------------------------------------------------------------------------------------
// Deserializer (borrowing: the value stays where it is)

#[derive(Clone, Copy)]
struct ValueDeserializer<'de>(&'de Value);

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Nil => de::Unexpected::Unit,
        Value::Boolean(b) => de::Unexpected::Bool(*b),
        Value::Integer(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => de::Unexpected::Unsigned(u),
            (None, Some(i)) => de::Unexpected::Signed(i),
            _ => de::Unexpected::Other("integer"),
        },
        Value::F32(f) => de::Unexpected::Float(f64::from(*f)),
        Value::F64(f) => de::Unexpected::Float(*f),
        Value::String(s) => match s.as_str() {
            Some(s) => de::Unexpected::Str(s),
            None => de::Unexpected::Bytes(s.as_bytes()),
        },
        Value::Binary(b) => de::Unexpected::Bytes(b),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Map(_) => de::Unexpected::Map,
        Value::Ext(..) => de::Unexpected::Other("MessagePack ext"),
    }
}

fn visit_str<'de, V: Visitor<'de>>(s: &'de Utf8String, visitor: V) -> Result<V::Value, ValueError> {
    match s.as_str() {
        Some(text) => visitor.visit_borrowed_str(text),
        None => visitor.visit_borrowed_bytes(s.as_bytes()),
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = ValueError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Nil => visitor.visit_unit(),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Integer(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    Err(ValueError("integer out of range".into()))
                }
            }
            Value::F32(f) => visitor.visit_f32(*f),
            Value::F64(f) => visitor.visit_f64(*f),
            Value::String(s) => visit_str(s, visitor),
            Value::Binary(b) => visitor.visit_borrowed_bytes(b),
            Value::Array(items) => {
                let mut seq = SeqAccess(items.iter());
                let out = visitor.visit_seq(&mut seq)?;
                if seq.0.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(
                        items.len(),
                        &"fewer elements in the array",
                    ))
                }
            }
            Value::Map(pairs) => {
                let mut map = MapAccess {
                    pairs: pairs.iter(),
                    value: None,
                };
                let out = visitor.visit_map(&mut map)?;
                if map.pairs.len() == 0 {
                    Ok(out)
                } else {
                    Err(de::Error::invalid_length(
                        pairs.len(),
                        &"fewer entries in the map",
                    ))
                }
            }
            Value::Ext(tag, data) => {
                visitor.visit_newtype_struct(ExtDeserializer { tag: *tag, data })
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name == rmpv::MSGPACK_EXT_STRUCT_NAME {
            return match self.0 {
                Value::Ext(tag, data) => {
                    visitor.visit_newtype_struct(ExtDeserializer { tag: *tag, data })
                }
                other => Err(de::Error::invalid_type(unexpected(other), &"an ext value")),
            };
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.0 {
            Value::String(s) => match s.as_str() {
                Some(name) => visitor.visit_enum(BorrowedStrDeserializer::<ValueError>::new(name)),
                None => Err(de::Error::invalid_type(
                    de::Unexpected::Bytes(s.as_bytes()),
                    &"a variant name",
                )),
            },
            Value::Map(pairs) if pairs.len() == 1 => visitor.visit_enum(EnumAccess {
                variant: &pairs[0].0,
                content: &pairs[0].1,
            }),
            other => Err(de::Error::invalid_type(
                unexpected(other),
                &"a variant name or a map of one entry {variant: content}",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct SeqAccess<'de>(std::slice::Iter<'de, Value>);

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = ValueError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        match self.0.next() {
            Some(v) => seed.deserialize(ValueDeserializer(v)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct MapAccess<'de> {
    pairs: std::slice::Iter<'de, (Value, Value)>,
    value: Option<&'de Value>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = ValueError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        match self.pairs.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(ValueDeserializer(k)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ValueError> {
        let v = self
            .value
            .take()
            .ok_or_else(|| ValueError("map value asked before its key".into()))?;
        seed.deserialize(ValueDeserializer(v))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

struct EnumAccess<'de> {
    variant: &'de Value,
    content: &'de Value,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = ValueError;
    type Variant = ValueDeserializer<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, ValueDeserializer<'de>), ValueError> {
        let v = seed.deserialize(ValueDeserializer(self.variant))?;
        Ok((v, ValueDeserializer(self.content)))
    }
}

impl<'de> de::VariantAccess<'de> for ValueDeserializer<'de> {
    type Error = ValueError;
    fn unit_variant(self) -> Result<(), ValueError> {
        match self.0 {
            Value::Nil => Ok(()),
            other => Err(de::Error::invalid_type(
                unexpected(other),
                &"a unit variant",
            )),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

/// An ext value as rmpv's `Value` reads it: a newtype around the pair (tag, bytes).
struct ExtDeserializer<'de> {
    tag: i8,
    data: &'de [u8],
}

impl<'de> de::Deserializer<'de> for ExtDeserializer<'de> {
    type Error = ValueError;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_seq(ExtSeq { ext: self, next: 0 })
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct ExtSeq<'de> {
    ext: ExtDeserializer<'de>,
    next: u8,
}

impl<'de> de::SeqAccess<'de> for ExtSeq<'de> {
    type Error = ValueError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        let i = self.next;
        self.next = self.next.saturating_add(1);
        match i {
            0 => {
                let de: I8Deserializer<ValueError> = self.ext.tag.into_deserializer();
                seed.deserialize(de).map(Some)
            }
            1 => seed
                .deserialize(BorrowedBytesDeserializer::<ValueError>::new(self.ext.data))
                .map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Shape {
        Dot,
        Circle(f64),
        Line(i64, i64),
        Rect { w: i64, h: i64 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct All {
        b: bool,
        i: i64,
        u: u8,
        f: f64,
        s: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        o: Option<i64>,
        unit: (),
        list: Vec<(String, i64)>,
        map: BTreeMap<String, i64>,
        shapes: Vec<Shape>,
        raw: Value,
    }

    fn sample() -> All {
        All {
            b: true,
            i: -5,
            u: 200,
            f: 2.5,
            s: "text".into(),
            bytes: vec![0xff, 0],
            o: None,
            unit: (),
            list: vec![("a".into(), 1)],
            map: [("k".to_string(), 2)].into_iter().collect(),
            shapes: vec![
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Line(1, 2),
                Shape::Rect { w: 3, h: 4 },
            ],
            raw: Value::Ext(1, b"ERR x".to_vec()),
        }
    }

    #[test]
    fn round_trip() {
        let v = to_value(&sample()).unwrap();
        let back: All = from_value(&v).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn shapes_of_the_contract() {
        let v = to_value(&sample()).unwrap();
        let Value::Map(pairs) = &v else {
            panic!("a struct is a map")
        };
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("bytes"), Value::Binary(vec![0xff, 0]));
        assert_eq!(get("o"), Value::Nil);
        assert_eq!(get("unit"), Value::Nil);
        assert_eq!(get("f"), Value::F64(2.5));
        assert_eq!(get("raw"), Value::Ext(1, b"ERR x".to_vec()));
        let Value::Array(shapes) = get("shapes") else {
            panic!()
        };
        assert_eq!(shapes[0], Value::from("Dot"));
        assert_eq!(
            shapes[1],
            Value::Map(vec![(Value::from("Circle"), Value::F64(1.5))])
        );
    }

    #[test]
    fn value_moves_through() {
        let v = Value::Array(vec![Value::from(1), Value::Nil]);
        assert_eq!(into_value(v.clone()).unwrap(), v);
        let back: Value = decode(Cow::Borrowed(&v), "record").unwrap();
        assert_eq!(back, v);
        let back: Value = decode(Cow::Owned(v.clone()), "record").unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn decode_errors_name_the_type() {
        let e = decode::<i64>(Cow::Owned(Value::from("x")), "record").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot decode the record as i64: invalid type"),
            "{e}"
        );
        assert!(from_value::<(i64,)>(&Value::Array(vec![1.into(), 2.into()])).is_err());
    }

    #[test]
    fn numbers_convert_like_python() {
        assert_eq!(from_value::<f64>(&Value::from(3)).unwrap(), 3.0);
        assert!(from_value::<i64>(&Value::F64(2.5)).is_err());
        assert_eq!(from_value::<u64>(&Value::from(u64::MAX)).unwrap(), u64::MAX);
        assert_eq!(
            from_value::<String>(&Value::Binary(b"ok".to_vec())).unwrap(),
            "ok"
        );
        assert_eq!(from_value::<Option<String>>(&Value::Nil).unwrap(), None);
    }
}
