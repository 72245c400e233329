// Stand-in for ankerl::unordered_dense (not packaged in Debian 12).
//
// mediasoup's worker only uses map, set and hash from it, with the standard
// container interface, so the std:: containers can take their place. They are
// somewhat slower, and iteration order differs (unordered_dense iterates in
// insertion order until an erase); the order of ids in dump() output may change.
#ifndef MS_COMPAT_ANKERL_UNORDERED_DENSE_H
#define MS_COMPAT_ANKERL_UNORDERED_DENSE_H

#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ankerl::unordered_dense
{
	template<class T>
	using hash = std::hash<T>;

	template<
	  class Key,
	  class T,
	  class Hash     = std::hash<Key>,
	  class KeyEqual = std::equal_to<Key>,
	  class Alloc    = std::allocator<std::pair<const Key, T>>>
	using map = std::unordered_map<Key, T, Hash, KeyEqual, Alloc>;

	template<
	  class Key,
	  class Hash     = std::hash<Key>,
	  class KeyEqual = std::equal_to<Key>,
	  class Alloc    = std::allocator<Key>>
	using set = std::unordered_set<Key, Hash, KeyEqual, Alloc>;
} // namespace ankerl::unordered_dense

#endif
