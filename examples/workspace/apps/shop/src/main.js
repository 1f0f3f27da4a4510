import { card, mount } from "@example/ui";
import "./style.css";

const banner = "Shop";
mount(
  document.getElementById("app"),
  card(banner, "Three things for sale today."),
  card("Kettle", "from @example/ui"),
  card("Teapot", "from @example/ui"),
  card("Mug", "from @example/ui"),
);
