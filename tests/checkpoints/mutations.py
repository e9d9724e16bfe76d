"""Ways to damage a checkpoint file in place, for the fault harness.

Each builder returns a function `mutate(path)` that rewrites the file at
`path`: raw bytes (truncation, bit flips), JSON values, a safetensors
header or its tensors, or a Flax msgpack tree.
"""

import json
import struct

import msgpack
import numpy as np
from flax import serialization
from safetensors.numpy import load_file, save_file


# ---------------------------------------------------------------- bytes --


def truncate(fraction: float):
  def mutate(path):
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(data[:int(len(data) * fraction)])
  return mutate


def replace_bytes(content: bytes):
  def mutate(path):
    with open(path, "wb") as f:
      f.write(content)
  return mutate


GARBAGE = bytes(range(256)) * 4


# ----------------------------------------------------------------- JSON --


def json_edit(fn):
  """fn(obj) edits the parsed JSON in place, or returns a replacement."""
  def mutate(path):
    with open(path) as f:
      obj = json.load(f)
    out = fn(obj)
    with open(path, "w") as f:
      json.dump(obj if out is None else out, f)
  return mutate


def set_key(*keys_and_value):
  """set_key('a', 'b', v): obj['a']['b'] = v."""
  *keys, value = keys_and_value

  def edit(obj):
    for k in keys[:-1]:
      obj = obj[k]
    obj[keys[-1]] = value
  return json_edit(edit)


def del_key(*keys):
  def edit(obj):
    for k in keys[:-1]:
      obj = obj[k]
    del obj[keys[-1]]
  return json_edit(edit)


def first_entry(mapping_key, fn):
  """fn(obj[mapping_key], first key in sorted order) edits that mapping."""
  def edit(obj):
    mapping = obj[mapping_key]
    fn(mapping, sorted(mapping)[0])
  return json_edit(edit)


# ---------------------------------------------------------- safetensors --


def _split(path):
  with open(path, "rb") as f:
    data = f.read()
  (n,) = struct.unpack("<Q", data[:8])
  return json.loads(data[8:8 + n]), data[8 + n:]


def _join(path, header, payload):
  text = json.dumps(header, separators=(",", ":")).encode()
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + payload)


def tensor_names(path):
  header, _ = _split(path)
  return sorted(k for k in header if k != "__metadata__")


def header_edit(fn):
  """fn(header, names) edits the parsed safetensors header in place."""
  def mutate(path):
    header, payload = _split(path)
    fn(header, tensor_names(path))
    _join(path, header, payload)
  return mutate


def header_dtype(new_dtype, which=0):
  def edit(header, names):
    header[names[which]]["dtype"] = new_dtype
  return header_edit(edit)


def header_shape(fn, which=0):
  def edit(header, names):
    header[names[which]]["shape"] = fn(header[names[which]]["shape"])
  return header_edit(edit)


def header_offsets(fn, which=0):
  def edit(header, names):
    entry = header[names[which]]
    entry["data_offsets"] = fn(entry["data_offsets"])
  return header_edit(edit)


def header_length(value):
  def mutate(path):
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(struct.pack("<Q", value) + data[8:])
  return mutate


def flip_header_bit(substring: bytes, bit: int = 0):
  """Flips one bit of the first byte of `substring` in the header."""
  def mutate(path):
    with open(path, "rb") as f:
      data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    at = data.index(substring, 8, 8 + n)
    data[at] ^= 1 << bit
    with open(path, "wb") as f:
      f.write(bytes(data))
  return mutate


def flip_data_bit(which=0, element=0, bit=0):
  """Flips bit `bit` (0 = lowest mantissa bit) of one tensor element."""
  def mutate(path):
    header, payload = _split(path)
    entry = header[tensor_names(path)[which]]
    start = entry["data_offsets"][0]
    size = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}[entry["dtype"]]
    data = bytearray(payload)
    data[start + element * size + bit // 8] ^= 1 << (bit % 8)
    _join(path, header, bytes(data))
  return mutate


def write_value(value, which=0, element=0):
  """Writes one float32 element (NaN, Inf, ...) into the raw data."""
  def mutate(path):
    header, payload = _split(path)
    start = header[tensor_names(path)[which]]["data_offsets"][0]
    data = bytearray(payload)
    data[start + 4 * element:start + 4 * element + 4] = struct.pack(
        "<f", value)
    _join(path, header, bytes(data))
  return mutate


def tensors_edit(fn):
  """fn(tensors, names) edits the {name: array} dict; the file is re-saved."""
  def mutate(path):
    tensors = load_file(path)
    fn(tensors, sorted(tensors))
    save_file(tensors, path)
  return mutate


def swap_tensors(fn_pick):
  """Swaps the values of the two tensors fn_pick(names) names."""
  def edit(tensors, names):
    a, b = fn_pick(names)
    tensors[a], tensors[b] = tensors[b], tensors[a]
  return tensors_edit(edit)


def swap_same_shape(suffix=""):
  """Swaps the first two tensors (ending in `suffix`) of one shape."""
  def edit(tensors, names):
    names = [n for n in names if n.endswith(suffix)]
    for i, a in enumerate(names):
      for b in names[i + 1:]:
        if tensors[a].shape == tensors[b].shape:
          tensors[a], tensors[b] = tensors[b], tensors[a]
          return
    raise AssertionError(f"no two tensors ending in {suffix!r} of one shape")
  return tensors_edit(edit)


# --------------------------------------------------------- Flax msgpack --


def msgpack_tree_edit(fn):
  """fn(tree) edits the restored tree, or returns a replacement."""
  def mutate(path):
    with open(path, "rb") as f:
      tree = serialization.msgpack_restore(f.read())
    out = fn(tree)
    with open(path, "wb") as f:
      f.write(serialization.msgpack_serialize(tree if out is None else out))
  return mutate


def msgpack_raw(obj):
  return replace_bytes(msgpack.packb(obj))


def first_kernel(tree, path=()):
  """(parent dict, key) of the first 'kernel' leaf in sorted order."""
  for key in sorted(tree):
    value = tree[key]
    if isinstance(value, dict):
      found = first_kernel(value, path + (key,))
      if found:
        return found
    elif key == "kernel":
      return tree, key
  return None


def kernel_edit(fn):
  def edit(tree):
    parent, key = first_kernel(tree)
    parent[key] = fn(parent[key])
  return msgpack_tree_edit(edit)


def nan_at(arr):
  arr = np.array(arr)
  arr.flat[0] = np.nan
  return arr
