//! A minimal, safe reader for the Python pickles that CIFAR-10's "python version" ships.
//!
//! A pickle is a program for a small stack machine. This reader runs only the opcodes that
//! hold data (ints, strings, bytes, lists, tuples, dicts, memo puts and gets) plus the few
//! that numpy uses to rebuild an array (`GLOBAL`, `REDUCE`, `BUILD`, `NEWOBJ`), and it runs
//! those without calling anything: `GLOBAL` only records the name, and `REDUCE`/`NEWOBJ`/
//! `BUILD` make an opaque [`Value::Object`] that remembers its callable, arguments and state.
//! Every other opcode is refused. Two calls are understood because Python 3 emits them for
//! plain bytes at protocol 2: `_codecs.encode(str, "latin1")` and `bytes()`; both are
//! evaluated here as pure data conversions.
//!
//! CIFAR's files are protocol 2 (written by Python 2's cPickle): a dict whose keys are byte
//! strings, `b"data"` → a numpy uint8 array [N, 3072], `b"labels"` → a list of N ints. A numpy
//! array pickles as `_reconstruct(ndarray, (0,), b"b")` then `BUILD` with the state tuple
//! `(version, shape, dtype, is_fortran, raw_bytes)`; the dtype as `dtype("u1", False, True)`
//! then `BUILD` with its own state.
//!
//! Values live in one arena (`Vec<Value>`), referred to by index, so that memo gets share the
//! object that later opcodes mutate, as in Python, and nothing is copied.

use std::collections::HashMap;

/// Index of a value in [`Pickle::values`].
pub(crate) type Id = usize;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A Python 3 `str` (BINUNICODE).
    Str(String),
    /// Python 3 `bytes` or a Python 2 `str` (BINSTRING).
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    /// Items in insertion order.
    Dict(Vec<(Id, Id)>),
    /// A name from `GLOBAL`/`STACK_GLOBAL`; never imported.
    Global {
        module: String,
        name: String,
    },
    /// The result of `REDUCE`/`NEWOBJ` (callable applied to args), with the state of a
    /// later `BUILD`; never evaluated.
    Object {
        callable: Id,
        args: Id,
        state: Option<Id>,
    },
}

/// A parsed pickle: the arena of values and the id of the value `STOP` returned.
#[derive(Debug)]
pub(crate) struct Pickle {
    pub values: Vec<Value>,
    pub root: Id,
}

/// Reads bytes at a cursor, with errors that say what ran out.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() - self.pos {
            return Err(format!(
                "the pickle ends after {} bytes, inside a value that needs {} more: the file is \
                 truncated",
                self.bytes.len(),
                n - (self.bytes.len() - self.pos)
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// A text line ending in `\n` (GLOBAL's operands), without the newline.
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("the pickle ends inside a GLOBAL name: the file is truncated")?;
        self.pos += end + 1;
        String::from_utf8(rest[..end].to_vec()).map_err(|_| "a GLOBAL name is not text".into())
    }
}

/// The machine's state while parsing.
struct Machine {
    values: Vec<Value>,
    stack: Vec<Id>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl Machine {
    fn push(&mut self, v: Value) {
        self.values.push(v);
        self.stack.push(self.values.len() - 1);
    }
    fn pop(&mut self, op: &str) -> Result<Id, String> {
        self.stack
            .pop()
            .ok_or_else(|| format!("{op} finds an empty stack: the pickle is malformed"))
    }
    fn top(&self, op: &str) -> Result<Id, String> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| format!("{op} finds an empty stack: the pickle is malformed"))
    }
    /// Pops everything above the last MARK, and the mark.
    fn pop_mark(&mut self, op: &str) -> Result<Vec<Id>, String> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| format!("{op} without a MARK: the pickle is malformed"))?;
        if m > self.stack.len() {
            return Err(format!("{op}: the stack is shorter than its MARK"));
        }
        Ok(self.stack.split_off(m))
    }
    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.values[id] {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// `REDUCE`: evaluates the two pure conversions Python 3 uses for bytes; anything else
    /// becomes an opaque object.
    fn reduce(&mut self, callable: Id, args: Id) -> Value {
        if let (Value::Global { module, name }, Value::Tuple(a)) =
            (&self.values[callable], &self.values[args])
        {
            let m = module.as_str();
            let n = name.as_str();
            // _codecs.encode("…", "latin1"): each char U+0000..U+00FF is one byte.
            if m == "_codecs"
                && n == "encode"
                && a.len() == 2
                && let (Some(s), Some("latin1" | "latin-1")) = (self.str_of(a[0]), self.str_of(a[1]))
                && let Some(b) = s
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect::<Option<Vec<u8>>>()
            {
                return Value::Bytes(b);
            }
            // bytes() (how Python 3 pickles b"" at protocol 2).
            if (m == "__builtin__" || m == "builtins") && n == "bytes" && a.is_empty() {
                return Value::Bytes(Vec::new());
            }
        }
        Value::Object {
            callable,
            args,
            state: None,
        }
    }
}

/// Name of an opcode, for messages.
fn opcode_name(op: u8) -> String {
    let name = match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'L' => "LONG",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'd' => "DICT",
        b'g' => "GET",
        b'i' => "INST",
        b'l' => "LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8b => "LONG4",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    };
    format!("{name} (0x{op:02x})")
}

/// Parses a pickle. Errors are a reason in words (the caller adds the file name).
pub(crate) fn parse(bytes: &[u8]) -> Result<Pickle, String> {
    let mut r = Reader { bytes, pos: 0 };
    let mut m = Machine {
        values: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    if bytes.first() != Some(&0x80) {
        return Err("it does not start with a pickle PROTO opcode (0x80)".into());
    }
    loop {
        let at = r.pos;
        if at == bytes.len() {
            return Err("the pickle ends without a STOP opcode: the file is truncated".into());
        }
        let op = r.u8()?;
        match op {
            // PROTO n; FRAME len (protocol 4 framing: only a length hint)
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    return Err(format!("unknown pickle protocol {proto}"));
                }
            }
            0x95 => {
                r.u64()?;
            }
            b'.' => {
                let root = m.pop("STOP")?;
                return Ok(Pickle {
                    values: m.values,
                    root,
                });
            }
            // Constants and numbers.
            b'N' => m.push(Value::None),
            0x88 => m.push(Value::Bool(true)),
            0x89 => m.push(Value::Bool(false)),
            b'J' => {
                let v = r.i32()?;
                m.push(Value::Int(v.into()))
            }
            b'K' => {
                let v = r.u8()?;
                m.push(Value::Int(v.into()))
            }
            b'M' => {
                let v = r.u16()?;
                m.push(Value::Int(v.into()))
            }
            0x8a => {
                // LONG1: n bytes, little-endian two's complement.
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    return Err(format!("an integer of {n} bytes is too large"));
                }
                let mut v: i64 = 0;
                for (k, &byte) in b.iter().enumerate() {
                    v |= (byte as i64) << (8 * k);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n); // sign-extend
                }
                m.push(Value::Int(v))
            }
            b'G' => {
                let v = f64::from_be_bytes(r.take(8)?.try_into().unwrap());
                m.push(Value::Float(v))
            }
            // Strings and bytes.
            b'X' | 0x8c => {
                let n = if op == b'X' {
                    r.u32()? as usize
                } else {
                    r.u8()? as usize
                };
                let s = String::from_utf8(r.take(n)?.to_vec())
                    .map_err(|_| format!("a string at byte {at} is not valid UTF-8"))?;
                m.push(Value::Str(s))
            }
            b'B' | b'C' | b'T' | b'U' => {
                let n = match op {
                    b'B' => r.u32()? as usize,
                    b'T' => usize::try_from(r.i32()?)
                        .map_err(|_| format!("a string at byte {at} has a negative length"))?,
                    _ => r.u8()? as usize,
                };
                let b = r.take(n)?.to_vec();
                m.push(Value::Bytes(b))
            }
            // Containers.
            b'}' => m.push(Value::Dict(Vec::new())),
            b']' => m.push(Value::List(Vec::new())),
            b')' => m.push(Value::Tuple(Vec::new())),
            b'(' => m.marks.push(m.stack.len()),
            b't' => {
                let items = m.pop_mark("TUPLE")?;
                m.push(Value::Tuple(items))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if m.stack.len() < n {
                    return Err(format!("TUPLE{n} finds too short a stack"));
                }
                let items = m.stack.split_off(m.stack.len() - n);
                m.push(Value::Tuple(items))
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![m.pop("APPEND")?]
                } else {
                    m.pop_mark("APPENDS")?
                };
                let list = m.top("APPEND")?;
                match &mut m.values[list] {
                    Value::List(v) => v.extend(items),
                    _ => return Err(format!("APPEND at byte {at} to something not a list")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = m.pop("SETITEM")?;
                    let k = m.pop("SETITEM")?;
                    vec![k, v]
                } else {
                    m.pop_mark("SETITEMS")?
                };
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let dict = m.top("SETITEM")?;
                match &mut m.values[dict] {
                    Value::Dict(d) => d.extend(items.chunks(2).map(|kv| (kv[0], kv[1]))),
                    _ => return Err(format!("SETITEM at byte {at} on something not a dict")),
                }
            }
            // Memo.
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => r.u8()? as u32,
                    b'r' => r.u32()?,
                    _ => m.memo.len() as u32,
                };
                let top = m.top("PUT")?;
                m.memo.insert(key, top);
            }
            b'h' | b'j' => {
                let key = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                let id = *m
                    .memo
                    .get(&key)
                    .ok_or_else(|| format!("GET of memo entry {key} that was never put"))?;
                m.stack.push(id)
            }
            // Names and objects: recorded, never imported or called.
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                m.push(Value::Global { module, name })
            }
            0x93 => {
                let name = m.pop("STACK_GLOBAL")?;
                let module = m.pop("STACK_GLOBAL")?;
                match (m.str_of(module), m.str_of(name)) {
                    (Some(mo), Some(na)) => {
                        let (module, name) = (mo.to_string(), na.to_string());
                        m.push(Value::Global { module, name })
                    }
                    _ => return Err("STACK_GLOBAL with operands that are not strings".into()),
                }
            }
            b'R' | 0x81 => {
                let args = m.pop("REDUCE")?;
                let callable = m.pop("REDUCE")?;
                if !matches!(m.values[args], Value::Tuple(_)) {
                    return Err(format!("REDUCE at byte {at} with arguments that are not a tuple"));
                }
                let v = m.reduce(callable, args);
                m.push(v)
            }
            b'b' => {
                let state = m.pop("BUILD")?;
                let obj = m.top("BUILD")?;
                match &mut m.values[obj] {
                    Value::Object { state: s, .. } => *s = Some(state),
                    _ => return Err(format!("BUILD at byte {at} on something not an object")),
                }
            }
            _ => {
                return Err(format!(
                    "it contains the pickle opcode {} at byte {at}, which this reader does not \
                     run (it reads only plain data and numpy arrays, and never runs code)",
                    opcode_name(op)
                ));
            }
        }
    }
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }

    /// The value under `key` in the dict `dict`, whether the key was pickled as `str` or
    /// `bytes` (CIFAR's keys are Python 2 byte strings).
    pub fn dict_get(&self, dict: Id, key: &str) -> Option<Id> {
        let Value::Dict(items) = self.get(dict) else {
            return None;
        };
        items.iter().find_map(|&(k, v)| match self.get(k) {
            Value::Str(s) if s == key => Some(v),
            Value::Bytes(b) if b == key.as_bytes() => Some(v),
            _ => None,
        })
    }

    /// The items of a list or tuple.
    pub fn items(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Value::List(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// A list (or tuple) of integers.
    pub fn int_list(&self, id: Id) -> Result<Vec<i64>, String> {
        let items = self.items(id).ok_or("it is not a list")?;
        items
            .iter()
            .map(|&i| match self.get(i) {
                Value::Int(v) => Ok(*v),
                Value::Bool(b) => Ok(*b as i64),
                other => Err(format!("it holds {} where an integer belongs", kind(other))),
            })
            .collect()
    }

    /// A list of strings (str, or bytes decoded as UTF-8).
    pub fn string_list(&self, id: Id) -> Option<Vec<String>> {
        self.items(id)?
            .iter()
            .map(|&i| match self.get(i) {
                Value::Str(s) => Some(s.clone()),
                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// A numpy array of dtype uint8 (or int8, read as its bytes): its shape and raw bytes.
    pub fn ndarray_u8(&self, id: Id) -> Result<(Vec<usize>, &[u8]), String> {
        let Value::Object { callable, state, .. } = self.get(id) else {
            return Err(format!("it is {}, not a numpy array", kind(self.get(id))));
        };
        match self.get(*callable) {
            Value::Global { module, name } if module.starts_with("numpy") && name == "_reconstruct" => {}
            other => {
                return Err(format!(
                    "it is built by {}, not numpy's _reconstruct",
                    global_name(other)
                ));
            }
        }
        // State: (version, shape, dtype, is_fortran, raw data).
        let state = state.ok_or("the numpy array has no state (BUILD)")?;
        let st = self
            .items(state)
            .filter(|s| s.len() == 5)
            .ok_or("the numpy array's state is not (version, shape, dtype, order, data)")?;
        let shape = self
            .int_list(st[1])
            .map_err(|e| format!("the numpy array's shape is malformed: {e}"))?;
        let shape: Vec<usize> = shape
            .into_iter()
            .map(|d| usize::try_from(d).map_err(|_| "a negative array dimension".to_string()))
            .collect::<Result<_, _>>()?;
        // dtype: Object(numpy.dtype, ("u1", False, True)).
        let dtype = match self.get(st[2]) {
            Value::Object { args, .. } => self.items(*args).and_then(|a| a.first()).and_then(|&t| match self
                .get(t)
            {
                Value::Str(s) => Some(s.clone()),
                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            }),
            _ => None,
        }
        .ok_or("the numpy array's dtype is malformed")?;
        let dtype = dtype.trim_start_matches(['|', '<', '>', '=']);
        if dtype != "u1" && dtype != "i1" {
            return Err(format!("the numpy array has dtype {dtype}, not uint8"));
        }
        let data = match self.get(st[4]) {
            Value::Bytes(b) => b.as_slice(),
            other => return Err(format!("the numpy array's data is {}", kind(other))),
        };
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("the numpy array's shape {shape:?} overflows: the file is damaged"))?;
        if data.len() != count {
            return Err(format!(
                "the numpy array of shape {shape:?} holds {} bytes, not {count}: the file is \
                 damaged",
                data.len()
            ));
        }
        Ok((shape, data))
    }
}

/// A word for the kind of a value, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Dict(_) => "a dict",
        Value::Global { .. } => "a global name",
        Value::Object { .. } => "an object",
    }
}

fn global_name(v: &Value) -> String {
    match v {
        Value::Global { module, name } => format!("{module}.{name}"),
        other => kind(other).to_string(),
    }
}
