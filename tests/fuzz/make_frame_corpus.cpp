// SPDX-License-Identifier: BSL-1.0
// Writes the seed corpus of frame_fuzz: a few valid and invalid frame streams.
// Usage: make_frame_corpus DIR   (the checked-in seeds are tests/fuzz/corpus/frame)
// Each file is frame_fuzz's config byte followed by the stream (see frame_fuzz.cpp).

#include <cstdio>
#include <fstream>
#include <iostream>
#include <troupe/net/frame.hpp>
#include <troupe/net/wire.hpp>

#include "fuzz_messages.hpp"

namespace {

using namespace troupe::net;

std::string frame(frame_kind kind, std::string_view payload, std::uint32_t type_id = 0) {
  std::string out;
  append_frame(out, frame_header{kind, type_id, 7, 9, 11}, payload);
  return out;
}

template <class T>
std::string payload(const T& value) {
  std::string out;
  encode(value, out);
  return out;
}

std::string u32le(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

bool write(const std::string& dir, const std::string& name, std::uint8_t config,
           const std::string& stream) {
  std::ofstream f(dir + "/" + name, std::ios::binary | std::ios::trunc);
  f.put(static_cast<char>(config));
  f << stream;
  if (!f) std::cerr << "make_frame_corpus: cannot write " << dir << "/" << name << "\n";
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_frame_corpus DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  const std::string account = payload(troupe::fuzz::sample_account_update());
  const std::string tree = payload(troupe::fuzz::sample_tree(3));
  const std::uint32_t account_id = wire_id<troupe::fuzz::account_update>::value;
  const std::uint32_t tree_id = wire_id<troupe::fuzz::tree>::value;

  std::string deep;  // a tree nested past bounded_input_archive::max_depth
  for (int i = 0; i < 200; ++i) deep += u32le(0) + u32le(1);
  deep += u32le(0) + u32le(0);

  std::string heartbeats;
  for (int i = 0; i < 16; ++i) heartbeats += frame(frame_kind::heartbeat, "");
  heartbeats += frame(frame_kind::goodbye, "");

  std::string bad_flags = frame(frame_kind::tell, account, account_id);
  bad_flags[5] = '\x80';
  // Flags announcing every field on a frame whose length leaves room for fewer.
  std::string bad_fields = u32le(8) + std::string("\x06\x0f", 2) + std::string(6, '\x01');
  std::string bad_kind = frame(frame_kind::ask, tree, tree_id);
  bad_kind[4] = '\x42';
  const std::string truncated = frame(frame_kind::reply, account, account_id);

  bool ok = true;
  ok &= write(dir, "valid-hello", 0x00, frame(frame_kind::hello, "cluster"));
  ok &= write(dir, "valid-tell-account", 0x04, frame(frame_kind::tell, account, account_id));
  ok &=
      write(dir, "valid-ask-reply", 0x08,
            frame(frame_kind::ask, tree, tree_id) + frame(frame_kind::reply, account, account_id) +
                frame(frame_kind::reply_error, "no such account"));
  ok &= write(dir, "valid-heartbeats", 0x0f, heartbeats);
  ok &= write(dir, "valid-writable", 0x23,
              frame(frame_kind::lookup, "bank") + frame(frame_kind::lookup_reply, payload(42)) +
                  frame(frame_kind::down, ""));
  ok &= write(dir, "valid-small-max", 0x13, frame(frame_kind::tell, std::string(200, 'p')));
  ok &= write(dir, "bad-over-small-max", 0x12, frame(frame_kind::tell, std::string(300, 'p')));
  ok &= write(dir, "bad-too-large", 0x00, u32le(0xFFFFFFFF) + std::string(32, '\0'));
  ok &= write(dir, "bad-too-short", 0x00, u32le(8) + std::string(8, '\x06'));
  ok &= write(dir, "bad-kind", 0x02, bad_kind);
  ok &= write(dir, "bad-flags", 0x03, bad_flags);
  ok &= write(dir, "bad-fields", 0x05, bad_fields);
  ok &= write(dir, "bad-truncated", 0x06, truncated.substr(0, truncated.size() - 3));
  ok &= write(dir, "bad-garbage", 0x07, "GET / HTTP/1.1\r\nHost: node\r\n\r\n");
  ok &= write(dir, "bad-payload-huge-size", 0x09,
              frame(frame_kind::tell, u32le(0xFFFFFFFF) + "alice", account_id));
  ok &=
      write(dir, "bad-payload-trailing", 0x0a, frame(frame_kind::tell, account + "!!", account_id));
  ok &= write(dir, "bad-payload-deep", 0x0b, frame(frame_kind::tell, deep, tree_id));
  return ok ? 0 : 1;
}
