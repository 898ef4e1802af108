// Overloaded{lambdas...}: one visitor for std::visit over the Input and Action variants.
#pragma once

namespace nbdd::core {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace nbdd::core
