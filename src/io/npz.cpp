// .npz reading and writing with libzip; see include/tapegrad/io/npz.hpp.
#include "tapegrad/io/npz.hpp"

#include <zip.h>

#include <memory>
#include <set>
#include <stdexcept>

#include "tapegrad/errors.hpp"
#include "tapegrad/io/atomic_file.hpp"
#include "tapegrad/io/input_file.hpp"
#include "tapegrad/memory.hpp"

namespace tapegrad::io {

namespace {

std::string zip_message(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string s = zip_error_strerror(&e);
  zip_error_fini(&e);
  return s;
}

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};

}  // namespace

void NpzWriter::add_array(std::string name, std::string npy) {
  members_.emplace_back(std::move(name) + ".npy", std::move(npy));
}

void NpzWriter::add_file(std::string name, std::string bytes) {
  members_.emplace_back(std::move(name), std::move(bytes));
}

void NpzWriter::write(const std::filesystem::path& path) const {
  const std::string name = quote(path.string());
  const auto tmp = detail::temp_path_for(path);
  int err = 0;
  zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) throw std::runtime_error("cannot write " + name + ": " + zip_message(err));
  auto fail = [&](const std::string& why) {
    zip_discard(z);
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("cannot write " + name + ": " + why);
  };
  for (const auto& [member, bytes] : members_) {
    // The source refers to `bytes` (freep = 0): members_ outlives zip_close below.
    zip_source_t* src = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
    if (!src) fail(zip_strerror(z));
    const zip_int64_t idx = zip_file_add(z, member.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);
      fail(zip_strerror(z));
    }
    if (zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), ZIP_CM_DEFLATE, 6) < 0)
      fail(zip_strerror(z));
  }
  if (zip_close(z) < 0) fail(zip_strerror(z));
  detail::rename_into_place(tmp, path);
}

Npz read_npz(const std::filesystem::path& path) {
  check_input_file(path);
  const std::string name = quote(path.string());
  int err = 0;
  std::unique_ptr<zip_t, ZipCloser> z(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err));
  if (!z) throw std::invalid_argument(name + ": not a readable .npz archive (" + zip_message(err) + ")");
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  // Every member's size from the central directory, checked against memory before reading.
  std::uint64_t total = 0;
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    if (zip_stat_index(z.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_NAME))
      throw std::invalid_argument(name + ": member " + std::to_string(i) + " cannot be read (" +
                                  zip_strerror(z.get()) + ")");
    total = memory::add_sat(total, st.size);
  }
  memory::check_allocation(total, name + ": the members of the archive");
  Npz out;
  std::set<std::string> seen;
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_index(z.get(), static_cast<zip_uint64_t>(i), 0, &st);
    const std::string member = st.name;
    const std::string where = name + " member " + quote(member);
    if (!seen.insert(member).second) throw std::invalid_argument(where + " appears twice");
    zip_file_t* f = zip_fopen_index(z.get(), static_cast<zip_uint64_t>(i), 0);
    if (!f) throw std::invalid_argument(where + ": " + zip_strerror(z.get()));
    std::string bytes(static_cast<std::size_t>(st.size), '\0');
    const zip_int64_t got = zip_fread(f, bytes.data(), st.size);
    // libzip checks the CRC-32 when the member has been read to its end.
    char extra;
    const zip_int64_t more = got == static_cast<zip_int64_t>(st.size) ? zip_fread(f, &extra, 1) : 0;
    const std::string ferr = zip_file_strerror(f);
    zip_fclose(f);
    if (got != static_cast<zip_int64_t>(st.size) || more != 0)
      throw std::invalid_argument(where + " is damaged (" + ferr + ")");
    const std::string suffix = ".npy";
    if (member.size() > suffix.size() &&
        member.compare(member.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string array = member.substr(0, member.size() - suffix.size());
      out.arrays.emplace_back(array, parse_npy(bytes, path.string() + ":" + member));
      out.raw.emplace(array, std::move(bytes));
    } else {
      out.files.emplace(member, std::move(bytes));
    }
  }
  return out;
}

}  // namespace tapegrad::io
