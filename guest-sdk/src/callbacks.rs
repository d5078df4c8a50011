//! Step functions, type-erased over [`Value`]: each typed closure of the builder is
//! wrapped in one that decodes its arguments with serde, calls it, and encodes the result.
//! The callback table of a guest (indexes in the WIT `step.callbacks`) holds these.

use std::borrow::Cow;
use std::rc::Rc;

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::value::{decode, into_value};
use crate::view::View;
use crate::Result;

pub(crate) type MapFn = dyn Fn(Cow<'_, Value>) -> Result<Value>;
pub(crate) type FlatMapFn = dyn Fn(Value) -> Result<Vec<Value>>;
pub(crate) type FilterFn = dyn Fn(&Value) -> Result<bool>;
pub(crate) type ForeachFn = dyn Fn(&Value) -> Result<()>;
pub(crate) type AccumulateFn = dyn Fn(Option<&Value>, Value) -> Result<Value>;
pub(crate) type FoldFn = dyn Fn(&Value, Value) -> Result<Value>;
pub(crate) type ReduceFn = dyn Fn(&Value, Option<&Value>, Value) -> Result<Value>;
pub(crate) type KeyFoldFn = dyn Fn(&Value, &Value, Value) -> Result<Value>;
pub(crate) type BatchReduceFn = dyn Fn(&Value, Vec<Value>) -> Result<Value>;
pub(crate) type MapViewFn = dyn for<'a> Fn(View<'a>) -> Result<Value>;
pub(crate) type FilterViewFn = dyn for<'a> Fn(View<'a>) -> Result<bool>;
pub(crate) type ForeachViewFn = dyn for<'a> Fn(View<'a>) -> Result<()>;
pub(crate) type Records = Box<dyn Iterator<Item = Result<Value>>>;
pub(crate) type GeneratorFn = dyn Fn(Vec<String>) -> Result<Records>;

/// One entry of the callback table.
#[derive(Clone)]
pub(crate) enum Callback {
    /// `Fn(I) -> O`: map, and every extractor (groupby, countby, avg, repartition...).
    Map(Rc<MapFn>),
    /// `Fn(View) -> O`: map_view.
    MapView(Rc<MapViewFn>),
    /// `Fn(I) -> Vec<O>`.
    FlatMap(Rc<FlatMapFn>),
    /// `Fn(I) -> bool`.
    Filter(Rc<FilterFn>),
    /// `Fn(View) -> bool`: filter_view.
    FilterView(Rc<FilterViewFn>),
    /// `Fn(I) -> ()`.
    Foreach(Rc<ForeachFn>),
    /// `Fn(View) -> ()`: foreach_view.
    ForeachView(Rc<ForeachViewFn>),
    /// `Fn(Option<A>, I) -> A`.
    Accumulate(Rc<AccumulateFn>),
    /// `Fn(A, I) -> A`: aggregate's seq and comb.
    Fold(Rc<FoldFn>),
    /// `Fn(K, Option<A>, I) -> A`: groupby's and localgroupby's reduce.
    Reduce(Rc<ReduceFn>),
    /// `Fn(K, A, I) -> A`: aggregateby's seq and comb.
    KeyFold(Rc<KeyFoldFn>),
    /// `Fn(K, Vec<I>) -> A`: batchgroupby's reduce.
    BatchReduce(Rc<BatchReduceFn>),
    /// `Fn(Vec<String>) -> records`: a GeneratorReader's generator.
    Generator(Rc<GeneratorFn>),
}

impl Callback {
    /// What the callback is, as error messages name it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Callback::Map(_) => "map/extract function Fn(I) -> O",
            Callback::MapView(_) => "map function Fn(View) -> O",
            Callback::FilterView(_) => "filter function Fn(View) -> bool",
            Callback::ForeachView(_) => "foreach function Fn(View) -> ()",
            Callback::FlatMap(_) => "flatmap function Fn(I) -> Vec<O>",
            Callback::Filter(_) => "filter function Fn(I) -> bool",
            Callback::Foreach(_) => "foreach function Fn(I) -> ()",
            Callback::Accumulate(_) => "accumulate function Fn(Option<A>, I) -> A",
            Callback::Fold(_) => "aggregate function Fn(A, I) -> A",
            Callback::Reduce(_) => "groupby reduce function Fn(K, Option<A>, I) -> A",
            Callback::KeyFold(_) => "aggregateby function Fn(K, A, I) -> A",
            Callback::BatchReduce(_) => "batchgroupby reduce function Fn(K, Vec<I>) -> A",
            Callback::Generator(_) => "generator function Fn(Vec<String>) -> records",
        }
    }
}

pub(crate) fn map<I, O, F>(f: F) -> Callback
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    F: Fn(I) -> Result<O> + 'static,
{
    Callback::Map(Rc::new(move |r: Cow<'_, Value>| {
        into_value(f(decode(r, "record")?)?)
    }))
}

pub(crate) fn map_view<O, F>(f: F) -> Callback
where
    O: Serialize + 'static,
    F: for<'a> Fn(View<'a>) -> Result<O> + 'static,
{
    Callback::MapView(Rc::new(move |r: View<'_>| into_value(f(r)?)))
}

pub(crate) fn filter_view<F>(f: F) -> Callback
where
    F: for<'a> Fn(View<'a>) -> Result<bool> + 'static,
{
    Callback::FilterView(Rc::new(f))
}

pub(crate) fn foreach_view<F>(f: F) -> Callback
where
    F: for<'a> Fn(View<'a>) -> Result<()> + 'static,
{
    Callback::ForeachView(Rc::new(f))
}

pub(crate) fn flatmap<I, O, F>(f: F) -> Callback
where
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    F: Fn(I) -> Result<Vec<O>> + 'static,
{
    Callback::FlatMap(Rc::new(move |r: Value| {
        f(decode(Cow::Owned(r), "record")?)?
            .into_iter()
            .map(into_value)
            .collect()
    }))
}

pub(crate) fn filter<I, F>(f: F) -> Callback
where
    I: DeserializeOwned + 'static,
    F: Fn(I) -> Result<bool> + 'static,
{
    Callback::Filter(Rc::new(move |r: &Value| {
        f(decode(Cow::Borrowed(r), "record")?)
    }))
}

pub(crate) fn foreach<I, F>(f: F) -> Callback
where
    I: DeserializeOwned + 'static,
    F: Fn(I) -> Result<()> + 'static,
{
    Callback::Foreach(Rc::new(move |r: &Value| {
        f(decode(Cow::Borrowed(r), "record")?)
    }))
}

pub(crate) fn accumulate<A, I, F>(f: F) -> Callback
where
    A: Serialize + DeserializeOwned + 'static,
    I: DeserializeOwned + 'static,
    F: Fn(Option<A>, I) -> Result<A> + 'static,
{
    Callback::Accumulate(Rc::new(move |a: Option<&Value>, r: Value| {
        let a = match a {
            Some(a) => Some(decode(Cow::Borrowed(a), "accumulator")?),
            None => None,
        };
        into_value(f(a, decode(Cow::Owned(r), "record")?)?)
    }))
}

pub(crate) fn fold<A, I, F>(f: F) -> Callback
where
    A: Serialize + DeserializeOwned + 'static,
    I: DeserializeOwned + 'static,
    F: Fn(A, I) -> Result<A> + 'static,
{
    Callback::Fold(Rc::new(move |a: &Value, r: Value| {
        let a = decode(Cow::Borrowed(a), "accumulator")?;
        into_value(f(a, decode(Cow::Owned(r), "record")?)?)
    }))
}

pub(crate) fn reduce<K, A, I, F>(f: F) -> Callback
where
    K: DeserializeOwned + 'static,
    A: Serialize + DeserializeOwned + 'static,
    I: DeserializeOwned + 'static,
    F: Fn(K, Option<A>, I) -> Result<A> + 'static,
{
    Callback::Reduce(Rc::new(move |k: &Value, a: Option<&Value>, r: Value| {
        let k = decode(Cow::Borrowed(k), "key")?;
        let a = match a {
            Some(a) => Some(decode(Cow::Borrowed(a), "accumulator")?),
            None => None,
        };
        into_value(f(k, a, decode(Cow::Owned(r), "record")?)?)
    }))
}

pub(crate) fn key_fold<K, A, I, F>(f: F) -> Callback
where
    K: DeserializeOwned + 'static,
    A: Serialize + DeserializeOwned + 'static,
    I: DeserializeOwned + 'static,
    F: Fn(K, A, I) -> Result<A> + 'static,
{
    Callback::KeyFold(Rc::new(move |k: &Value, a: &Value, r: Value| {
        let k = decode(Cow::Borrowed(k), "key")?;
        let a = decode(Cow::Borrowed(a), "accumulator")?;
        into_value(f(k, a, decode(Cow::Owned(r), "record")?)?)
    }))
}

pub(crate) fn batch_reduce<K, A, I, F>(f: F) -> Callback
where
    K: DeserializeOwned + 'static,
    A: Serialize + 'static,
    I: DeserializeOwned + 'static,
    F: Fn(K, Vec<I>) -> Result<A> + 'static,
{
    Callback::BatchReduce(Rc::new(move |k: &Value, rs: Vec<Value>| {
        let k = decode(Cow::Borrowed(k), "key")?;
        let rs = rs
            .into_iter()
            .map(|r| decode(Cow::Owned(r), "record"))
            .collect::<Result<Vec<I>>>()?;
        into_value(f(k, rs)?)
    }))
}

pub(crate) fn generator<T, It, F>(f: F) -> Callback
where
    T: Serialize + 'static,
    It: IntoIterator<Item = T>,
    It::IntoIter: 'static,
    F: Fn(Vec<String>) -> Result<It> + 'static,
{
    Callback::Generator(Rc::new(move |args: Vec<String>| {
        let it = f(args)?.into_iter().map(into_value);
        Ok(Box::new(it) as Records)
    }))
}
